/** The platforms baler's VMs run. A new architecture: its file beside amd64.ts, and an entry here. */
import type { VmPlatform } from '../platform.ts';
import { amd64 } from './amd64.ts';
import { arm64 } from './arm64.ts';

export const VM_PLATFORMS: readonly VmPlatform[] = [amd64, arm64];

/** The platform a build runs for when its spec names none. */
export const DEFAULT_VM_PLATFORM: VmPlatform = amd64;
