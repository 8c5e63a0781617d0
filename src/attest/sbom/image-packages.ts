import { BudgetExceededError } from '../../budget.ts';
import type { Digest } from '../../digest.ts';
import type { TarIndexLimits } from '../../image/tar-limits.ts';
import type { BlobStore } from '../../store/blob-store.ts';
import type { PackageRecord } from '../attestation-types.ts';
import { packageKey, type DatabasePackage } from './database-package.ts';
import { isWithin, OS_RELEASE } from './database-paths.ts';
import { MemoryLayerDatabasesCache, type LayerDatabasesCache } from './layer-databases-cache.ts';
import { readLayerDatabases, type LayerDatabaseFile, type LayerDatabases } from './layer-databases.ts';
import { packagePurl } from './purl.ts';
import { DEFAULT_SBOM_BUDGETS, sbomOverBudget, type SbomBudgets } from './sbom-budgets.ts';

export interface ImagePackagesOptions {
  budgets?: Partial<SbomBudgets>;
  /** Limits for reading the layers' tars (the build's, BuildUsage.tarLimits); indexTar's defaults otherwise. */
  tarLimits?: Partial<TarIndexLimits>;
  signal?: AbortSignal;
  /** Where layers' parts are kept; a process-wide in-memory cache by default. */
  cache?: LayerDatabasesCache;
}

const SHARED_CACHE = new MemoryLayerDatabasesCache();

/**
 * The OS packages of an image, from the package databases of its final filesystem: dpkg's
 * status, distroless' `status.d/`, apk's installed database; purls name the distribution its
 * os-release gives (purl.ts). Streams over the layers (stored
 * uncompressed by diff_id, bottom first), each read once for the entries that touch a database
 * and cached by diff_id; applies each layer's whiteouts, opaque directories and rewrites over
 * the ones below, so a layer that deletes or rewrites a database wins. Never unpacks.
 *
 * Each package is placed in the layer from which the databases have listed it (same name,
 * architecture and version) without a break: the layer that installed or upgraded it to that
 * version, or reinstalled it after a removal. Sorted by type, name, architecture, version.
 * Budgets (SbomBudgets) bound what is read; over one, BudgetExceededError.
 */
export async function imagePackages(diffIds: Digest[], store: BlobStore, opts: ImagePackagesOptions = {}): Promise<PackageRecord[]> {
  const budgets: SbomBudgets = { ...DEFAULT_SBOM_BUDGETS, ...opts.budgets };
  const cache = opts.cache ?? SHARED_CACHE;
  const cacheKey = (diffId: Digest) => `${diffId} ${budgets.maxDatabaseBytes} ${budgets.maxPackages} ${budgets.maxFieldBytes}`;
  const image = new MergedDatabases();
  for (const [i, diffId] of diffIds.entries()) {
    opts.signal?.throwIfAborted();
    let layer = cache.get(cacheKey(diffId));
    if (!layer) {
      try {
        layer = await readLayerDatabases(store, diffId, { budgets, tarLimits: opts.tarLimits, signal: opts.signal });
      } catch (err) {
        if (err instanceof BudgetExceededError) throw err.within(`layer ${i + 1} of ${diffIds.length}`);
        throw err;
      }
      cache.set(cacheKey(diffId), layer);
    }
    image.apply(layer, diffId);
  }
  return image.packages(budgets);
}

/** The database files of the layers applied so far, and since when each package has been listed. */
class MergedDatabases {
  private readonly files = new Map<string, LayerDatabaseFile>();
  /** How many listings (of the files present) each package has. */
  private readonly listings = new Map<string, number>();
  /** The layer each listed package has been listed since. */
  private readonly since = new Map<string, Digest>();

  /** O(files present × paths the layer removes + packages it lists and unlists). */
  apply(layer: LayerDatabases, diffId: Digest): void {
    const touched = new Set<string>();
    const count = (packages: DatabasePackage[], by: number) => {
      for (const pkg of packages) {
        const key = packageKey(pkg);
        this.listings.set(key, (this.listings.get(key) ?? 0) + by);
        touched.add(key);
      }
    };
    const drop = (hidden: (path: string) => boolean) => {
      for (const [path, file] of this.files) {
        if (!hidden(path)) continue;
        this.files.delete(path);
        count(file.packages, -1);
      }
    };
    for (const removed of layer.removed) drop((path) => isWithin(path, removed));
    for (const dir of layer.opaque) drop((path) => path !== dir && isWithin(path, dir));
    for (const file of layer.files) {
      const old = this.files.get(file.path);
      if (old) count(old.packages, -1);
      this.files.set(file.path, file);
      count(file.packages, +1);
    }
    // After the whole layer: a package its rewritten database still lists keeps its layer.
    for (const key of touched) {
      if ((this.listings.get(key) ?? 0) <= 0) {
        this.listings.delete(key);
        this.since.delete(key);
      } else if (!this.since.has(key)) {
        this.since.set(key, diffId);
      }
    }
  }

  /** Each package once (the first file in path order that lists it describes it), named in the image's distribution, sorted. */
  packages(budgets: SbomBudgets): PackageRecord[] {
    // os-release(5): /etc's if it is a file (a symlink there is usually to /usr/lib's), else /usr/lib's.
    const os = OS_RELEASE.map((path) => this.files.get(path)?.osRelease).find((release) => release !== undefined);
    const out = new Map<string, PackageRecord>();
    for (const path of [...this.files.keys()].sort()) {
      for (const pkg of this.files.get(path)?.packages ?? []) {
        const key = packageKey(pkg);
        if (out.has(key)) continue;
        const layer = this.since.get(key);
        if (!layer) throw new Error(`package ${key} listed without a layer (a bug)`);
        out.set(key, { ...pkg, purl: packagePurl(pkg, os), layer });
        if (out.size > budgets.maxPackages) throw sbomOverBudget(budgets, 'maxPackages', `more than ${budgets.maxPackages} packages in the image`);
      }
    }
    return [...out.values()].sort(comparePackages);
  }
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function comparePackages(a: PackageRecord, b: PackageRecord): number {
  return compare(a.type, b.type) || compare(a.name, b.name) || compare(a.architecture, b.architecture) || compare(a.version, b.version);
}
