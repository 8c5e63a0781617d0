import type { LayerDatabases } from './layer-databases.ts';

/**
 * Where a layer's part of the SBOM (what it does to the package databases) is kept between
 * builds, keyed by diff_id and the budgets it was read under: a layer's bytes never change, so
 * neither does its part. A store-backed cache (beside the layer, in the store's index home)
 * can implement this same interface.
 */
export interface LayerDatabasesCache {
  get(key: string): LayerDatabases | undefined;
  set(key: string, value: LayerDatabases): void;
}

/** Packages the default cache keeps in all (~200 bytes each: ~40 MB at most). */
const DEFAULT_MAX_PACKAGES = 200_000;

/**
 * The default: in memory, in this process, least recently used out first, bounded by the
 * packages it holds (a layer's part is mostly its packages). A layer with more packages than
 * the whole bound is not kept.
 */
export class MemoryLayerDatabasesCache implements LayerDatabasesCache {
  private readonly entries = new Map<string, { value: LayerDatabases; packages: number }>();
  private packages = 0;

  constructor(private readonly maxPackages = DEFAULT_MAX_PACKAGES) {}

  get(key: string): LayerDatabases | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    // Map order is insertion order: re-inserting makes it the most recently used.
    this.entries.delete(key);
    this.entries.set(key, entry);
    return entry.value;
  }

  set(key: string, value: LayerDatabases): void {
    const packages = value.files.reduce((sum, file) => sum + file.packages.length, 0) + 1;
    if (packages > this.maxPackages) return;
    const old = this.entries.get(key);
    if (old) {
      this.entries.delete(key);
      this.packages -= old.packages;
    }
    this.entries.set(key, { value, packages });
    this.packages += packages;
    for (const [oldest, entry] of this.entries) {
      if (this.packages <= this.maxPackages) break;
      this.entries.delete(oldest);
      this.packages -= entry.packages;
    }
  }
}
