/**
 * Which accelerator VMs run with: KVM when the host's CPU is the guest's architecture with
 * hardware virtualisation, /dev/kvm opens and a probe VM boots with it; TCG otherwise.
 * BALER_VM_ACCEL (or the runner's option) may name one instead.
 */
import { open } from 'node:fs/promises';
import { VmStartError } from './errors.ts';
import type { VmAccel, VmPlatform } from './platform.ts';

export type AccelSetting = VmAccel | 'auto';

/** Per process and platform: auto-detection's answer (it boots a VM: once is enough). */
const detected = new Map<string, Promise<VmAccel>>();

/** BALER_VM_ACCEL: kvm, tcg, or auto (also when unset). */
export function envAccel(env: NodeJS.ProcessEnv = process.env): AccelSetting {
  const v = env.BALER_VM_ACCEL;
  if (v === undefined || v === '' || v === 'auto') return 'auto';
  if (v === 'kvm' || v === 'tcg') return v;
  throw new VmStartError(`BALER_VM_ACCEL must be kvm, tcg or auto, got '${v}'`);
}

async function kvmOpens(): Promise<boolean> {
  try {
    const fh = await open('/dev/kvm', 'r+');
    await fh.close();
    return true;
  } catch {
    return false;
  }
}

/**
 * The accelerator for `platform`'s guests under `setting`; for 'auto', detected once per process:
 * `probe` boots a VM under KVM and says whether it ran (a throw counts as no).
 */
export function chooseAccel(platform: VmPlatform, setting: AccelSetting, probe: () => Promise<boolean>): Promise<VmAccel> {
  if (setting !== 'auto') return Promise.resolve(setting);
  let accel = detected.get(platform.name);
  if (!accel) {
    accel = detect(platform, probe);
    detected.set(platform.name, accel);
  }
  return accel;
}

async function detect(platform: VmPlatform, probe: () => Promise<boolean>): Promise<VmAccel> {
  if (process.arch !== platform.hostArch || !platform.cpuCanVirtualize() || !(await kvmOpens())) return 'tcg';
  // /dev/kvm can be there and still not work (e.g. kvm_pvm: stock kernels stall): boot one.
  try {
    return (await probe()) ? 'kvm' : 'tcg';
  } catch {
    return 'tcg';
  }
}
