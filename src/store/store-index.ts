import type { Redis } from 'ioredis';

/**
 * Where what is remembered beside a store (its indexes: compressed layers, registry pulls and
 * mounts) lives, so that every process using the store sees the same: files beside the blobs
 * of a filesystem store; the Redis all hosts share for an S3 store opened with one; else the
 * memory of this process.
 */
export type IndexHome = { readonly kind: 'dir'; readonly dir: string } | { readonly kind: 'redis'; readonly redis: Redis } | { readonly kind: 'memory' };

/** One kind of index, as it is made in each home. */
export interface IndexKind<T> {
  inDir(dir: string): T;
  inRedis(redis: Redis): T;
  inMemory(): T;
}

const made = new WeakMap<IndexHome, Map<IndexKind<unknown>, unknown>>();

/**
 * The store's index of `kind`, made once per home: wrappers of a store (they pass its home
 * on) and every later call get the same one. Takes any store (a BlobStore) by its home alone.
 */
export function storeIndex<T>(store: { readonly indexHome: IndexHome }, kind: IndexKind<T>): T {
  const home = store.indexHome;
  let indexes = made.get(home);
  if (!indexes) made.set(home, (indexes = new Map()));
  let index = indexes.get(kind) as T | undefined;
  if (index === undefined) {
    index = home.kind === 'dir' ? kind.inDir(home.dir) : home.kind === 'redis' ? kind.inRedis(home.redis) : kind.inMemory();
    indexes.set(kind, index);
  }
  return index;
}
