/**
 * The platforms the hostile VM steps run on (issue 15: every VM limit holds on arm64 too):
 * linux/amd64 as before (its specs name no architecture, the default), and linux/arm64 (an
 * AArch64 microVM, TCG on an amd64 host) where its QEMU is installed. Each attack is a row per
 * platform in the fault table, the arm64 one named `… (arm64)`.
 */
import { onPath } from '../../../src/vm/served-platforms.ts';
import { ATTACK_MS } from './timing.ts';

export interface HostileVmPlatform {
  /** The OCI platform the worker serves (BALER_VM_PLATFORMS). */
  platform: 'linux/amd64' | 'linux/arm64';
  /** What the attack's spec adds to run its step on this platform. */
  spec: { architecture?: 'arm64' };
  /** Appended to the test's and the fault table row's name. */
  suffix: string;
  /** The guest kernel's console device (a flood writes to it). */
  consoleDevice: string;
  /** How long the attack's build may take before it counts as not ending. */
  attackMs: number;
  /** Undefined when the platform runs here; else why its rows are skipped. */
  skipped?: string;
}

const ARM64_QEMU = 'qemu-system-aarch64';

export const HOSTILE_VM_PLATFORMS: readonly HostileVmPlatform[] = [
  { platform: 'linux/amd64', spec: {}, suffix: '', consoleDevice: 'ttyS0', attackMs: ATTACK_MS },
  {
    platform: 'linux/arm64',
    spec: { architecture: 'arm64' },
    suffix: ' (arm64)',
    // The PL011 of QEMU's virt machine (src/vm/platforms/arm64.ts).
    consoleDevice: 'ttyAMA0',
    // The same wait: the slowest arm64 step here (30,000 files) took 42 s under TCG, amd64's 20 s.
    attackMs: ATTACK_MS,
    skipped: onPath(ARM64_QEMU) ? undefined : `${ARM64_QEMU} is not installed`,
  },
];

/** BALER_VM_PLATFORMS for the hostile worker: every platform not skipped. */
export const servedPlatformsSetting = (): string =>
  HOSTILE_VM_PLATFORMS.filter((p) => !p.skipped)
    .map((p) => p.platform)
    .join(',');
