/**
 * What the worker's main thread and a build's sandbox thread say to each other (port-rpc.ts).
 *
 * main → sandbox: `start` (the build; answers its result), `vm.openInput` (a VM step's input
 * tar, streamed, as the VM runner asks for it; it may ask twice when a warm VM was lost).
 * sandbox → main: the build's host services, which stay in the main thread because they are
 * shared by every build of the worker or must outlive the sandbox: the VM runner (`vm.run`,
 * `vm.openUpper`, `vm.dispose`), zstd/xz/bzip2 decompressor processes (`decompress`: the
 * compressed bytes streamed there, the decompressed back), earlier builds (`loadBuildImage`), the result cache
 * (`cache.get`/`cache.set`), and notifications of what the build observes (steps, progress,
 * cache lookups, lines for its log: BuildObserver) and of stored bytes, in the order they happen. A VM step's log output never enters the sandbox.
 */
import type { QuotaSettings } from '../auth/tenant-quota.ts';
import type { ResolvedSpec } from '../builds/spec.ts';
import type { LayerBudgets } from '../image/build-usage.ts';
import type { ArchiveBudgets } from '../image/sources/archive/budgets.ts';
import type { Registries } from '../registry/registries.ts';
import type { Config } from '../config.ts';
import type { VmJob, VmOutcome } from '../vm/vm-runner.ts';

/** Everything a sandbox needs to run one build (plain data: it is copied into the thread). */
export interface SandboxBuild {
  spec: ResolvedSpec;
  buildId: string;
  tenant: string;
  allowDevices: boolean;
  registries?: Registries;
  /** Whether the worker has a result cache (the sandbox then uses it through `cache.*`). */
  cache: boolean;
  noCache?: boolean;
  archiveBudgets?: ArchiveBudgets;
  layerBudgets?: LayerBudgets;
  /** Where the sandbox opens the store (its own connection to the same blobs). */
  store: Pick<Config, 'store' | 's3' | 'dataDir'>;
  /** For a store whose indexes live in Redis (S3), and for charging the tenant. */
  redisUrl?: string;
  /** What the tenant may store: every put of the build is charged to it (needs `redisUrl`). */
  quota?: QuotaSettings;
}

/** A VM step as the sandbox asks for it: the job without its streams, callbacks and signal (those are the main thread's). */
export type RemoteVmJob = Pick<VmJob, 'platform' | 'lowerCount' | 'inputBytes' | 'runAsRoot' | 'extraCommands' | 'shadowSetup' | 'clock' | 'limits'> & {
  hasLower: boolean;
  hasUpper: boolean;
};

export interface RemoteVmStarted {
  resultId: number;
  outcome: VmOutcome;
}

export type VmInput = 'lower' | 'upper';

export const METHODS = {
  start: 'start',
  vmRun: 'vm.run',
  vmOpenUpper: 'vm.openUpper',
  vmDispose: 'vm.dispose',
  vmOpenInput: 'vm.openInput',
  loadBuildImage: 'loadBuildImage',
  cacheGet: 'cache.get',
  cacheSet: 'cache.set',
  decompress: 'decompress',
} as const;

export const NOTES = {
  ready: 'ready',
  cacheLookup: 'cacheLookup',
  stepStarted: 'event.stepStarted',
  stepFinished: 'event.stepFinished',
  stepCached: 'event.stepCached',
  progress: 'event.progress',
  stored: 'stored',
  log: 'log',
} as const;
