/**
 * Capability classes: what a build needs from a worker host, and which classes a host serves.
 *
 * A BullMQ worker cannot filter jobs by their content, so a build is queued in the queue of
 * its class and a worker consumes only the queues of classes it can serve: a host never takes
 * a build it would have to hand back.
 *
 * Classes are VM memory tiers (powers of two from the default VM's 512 MiB up to the largest
 * `memorySize` a spec may ask for). A build's class is the smallest tier that holds the largest
 * VM its steps boot; a build without a VM step needs only the base tier, like the default VM.
 */
import { needsVm, type ResolvedSpec } from '../builds/spec.ts';
import type { VmAccel } from '../vm/qemu-command.ts';

/** Every worker serves at least this tier: the default VM's memory. */
export const BASE_TIER_MIB = 512;
/** The largest `memorySize` a spec may ask for (openapi.yaml). */
export const LARGEST_TIER_MIB = 16384;

/** Memory tiers from the base up: 512, 1024, …, 16384 MiB. */
export const MEMORY_TIERS_MIB: readonly number[] = Array.from({ length: Math.log2(LARGEST_TIER_MIB / BASE_TIER_MIB) + 1 }, (_, i) => BASE_TIER_MIB * 2 ** i);

export interface WorkerCapabilities {
  accel: VmAccel;
  /** The largest VM this host runs, in MiB. */
  maxVmMemoryMiB: number;
}

export interface Requirement {
  /** The memory tier of the largest VM the build boots (the base tier when it boots none). */
  vmMemoryMiB: number;
}

/** What a build needs: the tier of its VM step's memory, if it has one. */
export function requirementOf(spec: Pick<ResolvedSpec, 'runAsRoot' | 'extraCommands' | 'memorySize'>): Requirement {
  if (!needsVm(spec)) return { vmMemoryMiB: BASE_TIER_MIB };
  const tier = MEMORY_TIERS_MIB.find((t) => t >= spec.memorySize) ?? LARGEST_TIER_MIB;
  return { vmMemoryMiB: tier };
}

/** The tiers a host serves, largest first (the builds only it can run are taken first). */
export function tiersServedBy(capabilities: WorkerCapabilities): number[] {
  return MEMORY_TIERS_MIB.filter((t) => t === BASE_TIER_MIB || t <= capabilities.maxVmMemoryMiB).reverse();
}

/** Whether a host can run a build with this requirement. */
export function canServe(capabilities: WorkerCapabilities, requirement: Requirement): boolean {
  return requirement.vmMemoryMiB === BASE_TIER_MIB || requirement.vmMemoryMiB <= capabilities.maxVmMemoryMiB;
}
