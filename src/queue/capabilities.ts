/**
 * Build classes: what a build requires of a worker host, and which classes a host serves.
 *
 * A BullMQ worker cannot filter jobs by their content, so a build is queued in the queue of
 * its class and a worker consumes only the queues of classes it can serve: a host never takes
 * a build it would have to hand back.
 *
 * A class is a platform (the architecture the build's VMs run, which a host's QEMU and
 * kernel must match: natively or emulated) and a VM memory tier (powers of two from the
 * default VM's 512 MiB up to the largest `memorySize` a spec may ask for). A build's platform
 * is its architecture's when it has a VM step; a build without one runs no VM, so any host
 * serving the default platform takes it whatever it labels (its base is resolved to its
 * architecture by code, not by a VM). A build's tier is the smallest that holds the largest VM
 * its steps boot; a build without a VM step needs only the base tier, like the default VM.
 */
import { vmPlatformName } from '../builds/build-platform.ts';
import { needsVm, type ResolvedSpec } from '../builds/spec.ts';
import type { VmAccel } from '../vm/platform.ts';
import { DEFAULT_VM_PLATFORM, VM_PLATFORMS } from '../vm/platforms/index.ts';
import { platformSetName, platformSets, platformsInSet } from './platform-sets.ts';

/** Every worker serves at least this tier: the default VM's memory. */
export const BASE_TIER_MIB = 512;
/** The largest `memorySize` a spec may ask for (openapi.yaml). */
const LARGEST_TIER_MIB = 16384;

/** Memory tiers from the base up: 512, 1024, …, 16384 MiB. */
export const MEMORY_TIERS_MIB: readonly number[] = Array.from({ length: Math.log2(LARGEST_TIER_MIB / BASE_TIER_MIB) + 1 }, (_, i) => BASE_TIER_MIB * 2 ** i);

/** One platform a host runs VMs of, and how. */
export interface ServedPlatform {
  /** os/architecture (a VmPlatform's name). */
  platform: string;
  /** kvm: natively, with hardware virtualisation; tcg: emulated (or native without KVM). */
  accel: VmAccel;
}

export interface WorkerCapabilities {
  /** How the VMs of its first platform run. */
  accel: VmAccel;
  /**
   * Its first platform, os/architecture (the host's own when it serves it). Absent in the
   * entries of workers from before platforms: those run linux/amd64.
   */
  platform?: string;
  /** Every platform it runs VMs of, its first one first. Absent in the entries of workers from before several platforms: it serves `platform` alone. */
  platforms?: ServedPlatform[];
  /** The largest VM this host runs, in MiB. */
  maxVmMemoryMiB: number;
}

/** What a build requires of the host that runs it; it waits in this class's queue. */
export interface BuildClass {
  /**
   * The platform its VMs run, os/architecture; for a multi-platform build whose VM steps run on
   * several, the set of them (platform-sets.ts: `linux/amd64+linux/arm64`), served only by a
   * host serving each.
   */
  platform: string;
  /** The memory tier of the largest VM the build boots (the base tier when it boots none). */
  vmMemoryMiB: number;
}

/** The platforms a host runs VMs of, its first one first. */
export function platformsOf(capabilities: WorkerCapabilities): string[] {
  return capabilities.platforms?.map((p) => p.platform) ?? [capabilities.platform ?? DEFAULT_VM_PLATFORM.name];
}

/**
 * What a build requires: the platform of its VM step, or the platforms of a multi-platform
 * build's (`platforms`), the default one when it has none; and the tier of the step's memory.
 */
export function classOf(spec: Pick<ResolvedSpec, 'architecture' | 'runAsRoot' | 'extraCommands' | 'memorySize'> & { platforms?: readonly string[] }): BuildClass {
  if (!needsVm(spec)) return { platform: DEFAULT_VM_PLATFORM.name, vmMemoryMiB: BASE_TIER_MIB };
  const tier = MEMORY_TIERS_MIB.find((t) => t >= spec.memorySize) ?? LARGEST_TIER_MIB;
  return { platform: platformSetName(spec.platforms ?? [vmPlatformName(spec.architecture)]), vmMemoryMiB: tier };
}

/**
 * The classes a host serves: for each set of its platforms, the tiers up to its largest VM,
 * largest first (the builds only it can run are taken first); within a tier the sets of
 * several platforms first, then its first platform's, then the others'.
 */
export function classesServedBy(capabilities: WorkerCapabilities): BuildClass[] {
  const sets = platformSets(platformsOf(capabilities));
  return MEMORY_TIERS_MIB.filter((t) => t === BASE_TIER_MIB || t <= capabilities.maxVmMemoryMiB)
    .reverse()
    .flatMap((vmMemoryMiB) => sets.map((platform) => ({ platform, vmMemoryMiB })));
}

/** Every class a build can be in: each set of known platforms' tiers. */
export function allBuildClasses(): BuildClass[] {
  return platformSets(VM_PLATFORMS.map((p) => p.name)).flatMap((platform) => MEMORY_TIERS_MIB.map((vmMemoryMiB) => ({ platform, vmMemoryMiB })));
}

/** Whether a host can run a build of this class. */
export function canServe(capabilities: WorkerCapabilities, required: BuildClass): boolean {
  const served = platformsOf(capabilities);
  if (!platformsInSet(required.platform).every((p) => served.includes(p))) return false;
  return required.vmMemoryMiB === BASE_TIER_MIB || required.vmMemoryMiB <= capabilities.maxVmMemoryMiB;
}
