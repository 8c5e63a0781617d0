/** What the parts of QemuVmRunner share: the runner's settings, resolved once at its construction. */
import type { Logger } from '../log.ts';
import type { VmAssets } from './assets/vm-assets.ts';
import type { DiskAdmission } from './disk-admission.ts';
import type { VmPlatform } from './platform.ts';

type VmKind = 'cold' | 'warm';

/** A runner's VM boots, each with its kind and the runner's platform (a VmPlatform's name, e.g. `linux/arm64`). */
export interface VmBootObserver {
  /** QEMU is being started: for one step (cold) or for the pool (warm). */
  started(kind: VmKind, platform: string): void;
  /** It did not come up: QEMU refused or failed (bad kernel, no KVM), or a warm guest died or was not ready in time. */
  failed(kind: VmKind, platform: string): void;
}

export interface RunnerContext {
  readonly platform: VmPlatform;
  readonly qemuBinary: string;
  /** Guest vCPUs. */
  readonly cpus: number;
  /** Processes the scripts may have at once. */
  readonly pidsMax: number;
  /** Where step dirs go. */
  readonly tmpDir: string;
  /** Free space on tmpDir's filesystem, shared by every step of this runner. */
  readonly admission: DiskAdmission;
  readonly logger?: Logger;
  readonly boots?: VmBootObserver;
  /** Kernel and initramfs (built into the cache on first use). */
  assets(): Promise<VmAssets>;
}

/** Phase timestamps on the guest's console (BALER_VM_TRACE=1). */
export function traceEnabled(): boolean {
  return process.env.BALER_VM_TRACE === '1';
}
