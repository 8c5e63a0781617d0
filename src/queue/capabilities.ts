/**
 * Build classes: what a build requires of a worker host, and which classes a host serves.
 *
 * A BullMQ worker cannot filter jobs by their content, so a build is queued in the queue of
 * its class and a worker consumes only the queues of classes it can serve: a host never takes
 * a build it would have to hand back.
 *
 * A class is a platform (the architecture the build's VMs run, which a host's QEMU and
 * kernel must match) and a VM memory tier (powers of two from the default VM's 512 MiB up to
 * the largest `memorySize` a spec may ask for). A build's tier is the smallest that holds the
 * largest VM its steps boot; a build without a VM step needs only the base tier, like the
 * default VM.
 */
import { needsVm, type ResolvedSpec } from '../builds/spec.ts';
import type { VmAccel } from '../vm/platform.ts';
import { DEFAULT_VM_PLATFORM, VM_PLATFORMS } from '../vm/platforms/index.ts';

/** Every worker serves at least this tier: the default VM's memory. */
export const BASE_TIER_MIB = 512;
/** The largest `memorySize` a spec may ask for (openapi.yaml). */
const LARGEST_TIER_MIB = 16384;

/** Memory tiers from the base up: 512, 1024, …, 16384 MiB. */
export const MEMORY_TIERS_MIB: readonly number[] = Array.from({ length: Math.log2(LARGEST_TIER_MIB / BASE_TIER_MIB) + 1 }, (_, i) => BASE_TIER_MIB * 2 ** i);

export interface WorkerCapabilities {
  accel: VmAccel;
  /**
   * The platform its VMs run, os/architecture (a VmPlatform's name). Absent in the entries
   * of workers from before platforms: those run linux/amd64.
   */
  platform?: string;
  /** The largest VM this host runs, in MiB. */
  maxVmMemoryMiB: number;
}

/** What a build requires of the host that runs it; it waits in this class's queue. */
export interface BuildClass {
  /** The platform its VMs run, os/architecture. */
  platform: string;
  /** The memory tier of the largest VM the build boots (the base tier when it boots none). */
  vmMemoryMiB: number;
}

/** The platform a host's VMs run. */
export function platformOf(capabilities: WorkerCapabilities): string {
  return capabilities.platform ?? DEFAULT_VM_PLATFORM.name;
}

/** What a build requires: its platform (every build is for the default one so far) and the tier of its VM step's memory. */
export function classOf(spec: Pick<ResolvedSpec, 'runAsRoot' | 'extraCommands' | 'memorySize'>): BuildClass {
  const platform = DEFAULT_VM_PLATFORM.name;
  if (!needsVm(spec)) return { platform, vmMemoryMiB: BASE_TIER_MIB };
  const tier = MEMORY_TIERS_MIB.find((t) => t >= spec.memorySize) ?? LARGEST_TIER_MIB;
  return { platform, vmMemoryMiB: tier };
}

/** The classes a host serves: its platform's tiers up to its largest VM, largest first (the builds only it can run are taken first). */
export function classesServedBy(capabilities: WorkerCapabilities): BuildClass[] {
  const platform = platformOf(capabilities);
  return MEMORY_TIERS_MIB.filter((t) => t === BASE_TIER_MIB || t <= capabilities.maxVmMemoryMiB)
    .reverse()
    .map((vmMemoryMiB) => ({ platform, vmMemoryMiB }));
}

/** Every class a build can be in: each known platform's tiers. */
export function allBuildClasses(): BuildClass[] {
  return VM_PLATFORMS.flatMap((p) => MEMORY_TIERS_MIB.map((vmMemoryMiB) => ({ platform: p.name, vmMemoryMiB })));
}

/** Whether a host can run a build of this class. */
export function canServe(capabilities: WorkerCapabilities, required: BuildClass): boolean {
  if (platformOf(capabilities) !== required.platform) return false;
  return required.vmMemoryMiB === BASE_TIER_MIB || required.vmMemoryMiB <= capabilities.maxVmMemoryMiB;
}
