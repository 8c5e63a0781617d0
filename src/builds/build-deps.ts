import type { BuildUsage, LayerBudgets } from '../image/build-usage.ts';
import type { Image } from '../image/image.ts';
import type { ArchiveBudgets } from '../image/sources/archive/budgets.ts';
import type { Logger } from '../log.ts';
import type { Registries } from '../registry/registries.ts';
import type { BlobStore } from '../store/blob-store.ts';
import type { VmRunner } from '../vm/vm-runner.ts';
import type { BuildObserver } from './build-observer.ts';
import type { ResultCache } from './result-cache.ts';

/** What runBuild works with. */
export interface BuildDeps {
  store: BlobStore;
  vm: VmRunner;
  /** The image of an earlier build, for `fromImage: {build}` (of a multi-platform build: its image of `architecture`). */
  loadBuildImage(buildId: string, architecture?: string): Promise<Image>;
  /** Whose build this is: its VM steps' layers are cached for this tenant alone. */
  tenant: string;
  allowDevices: boolean;
  /** What importing a base image archive may cost (config.archiveBudgets); absent: the defaults. */
  archiveBudgets?: ArchiveBudgets;
  /** Registries the operator allows for `fromImage: {ref}`; none when absent. */
  registries?: Registries;
  /** Told of the build's steps, progress, output and cache lookups; absent: nobody is. */
  observer?: BuildObserver;
  signal?: AbortSignal;
  /** Layers and base imports made before, by what produced them. Absent: no caching. */
  cache?: ResultCache;
  /** Look nothing up in the cache (still record what this build makes): `?noCache=true`. */
  noCache?: boolean;
  /** Where the VM runner's lines about the build's VM step go (the build's logger, with its ids). */
  logger?: Logger;
  /** What the build's tars and layers may hold (config.layerBudgets); absent: the defaults. */
  layerBudgets?: LayerBudgets;
}

/** BuildDeps as the steps of one running build use them. */
export interface BuildContext extends BuildDeps {
  observer: BuildObserver;
  /** What the build's tars and layers hold so far, against its budgets. */
  usage: BuildUsage;
}
