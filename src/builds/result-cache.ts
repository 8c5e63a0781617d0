import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { canonicalJson } from '../image/canonical-json.ts';

/**
 * Bumped whenever what a cached key produces changes (layer format, tar writer, archive
 * layout, VM guest) or what a key is made of: entries made under another version are never
 * found, so a format change never serves a stale layer or build. 2: VM layers and whole
 * builds are keyed by tenant (version 1's were shared by all tenants). 3: one rule for device
 * nodes (src/image/device-policy.ts): contents layers drop those under /dev/ even where the
 * operator allows devices, and bases are cached with the rule applied. 4: layers and rootfs
 * tars in GNU tar's `--sort=name` order (each directory's subtree before its next sibling).
 * 5: base imports are cached as a StoredImage, under `imageId` (was `configDigest`).
 */
export const CACHE_VERSION = 5;

/** What is cached: whole builds, single layers, verified base-image imports. */
export type CacheKind = 'build' | 'layer' | 'import';

/** The key of what `inputs` produce: a sha256 over their canonical JSON. */
export function cacheKey(kind: CacheKind, inputs: unknown): string {
  return createHash('sha256').update(canonicalJson({ kind, inputs })).digest('hex');
}

/**
 * Results by the hash of what produced them, shared by every worker and API replica. Values
 * only name blobs; a user of a hit checks that they are still stored (garbage collection may
 * have taken them) and treats a miss the same as no entry.
 */
export interface ResultCache {
  get<T>(kind: CacheKind, key: string): Promise<T | null>;
  set(kind: CacheKind, key: string, value: unknown): Promise<void>;
}

/** A cache whose entries can be taken back (the worker's: a build recorded, then found cancelled). */
export interface RevocableResultCache extends ResultCache {
  delete(kind: CacheKind, key: string): Promise<void>;
}

/**
 * In Redis, each entry expiring after `ttlSeconds` (the builds' retention: blobs go with
 * them), under a namespace of its version.
 */
export class RedisResultCache implements RevocableResultCache {
  constructor(
    private readonly redis: Redis,
    private readonly ttlSeconds: number,
    private readonly version = CACHE_VERSION,
  ) {}

  private keyOf(kind: CacheKind, key: string): string {
    return `baler:cache:v${this.version}:${kind}:${key}`;
  }

  async get<T>(kind: CacheKind, key: string): Promise<T | null> {
    const raw = await this.redis.get(this.keyOf(kind, key));
    if (raw === null) return null;
    try {
      return JSON.parse(raw) as T;
    } catch {
      return null;
    }
  }

  async set(kind: CacheKind, key: string, value: unknown): Promise<void> {
    await this.redis.set(this.keyOf(kind, key), JSON.stringify(value), 'EX', Math.max(1, this.ttlSeconds));
  }

  async delete(kind: CacheKind, key: string): Promise<void> {
    await this.redis.del(this.keyOf(kind, key));
  }
}

/** In this process's memory (tests, benchmarks of runBuild alone); `entries` may be shared. */
export class MemoryResultCache implements RevocableResultCache {
  constructor(
    readonly entries = new Map<string, string>(),
    private readonly version = CACHE_VERSION,
  ) {}

  async get<T>(kind: CacheKind, key: string): Promise<T | null> {
    const raw = this.entries.get(`v${this.version}:${kind}:${key}`);
    return raw === undefined ? null : (JSON.parse(raw) as T);
  }

  async set(kind: CacheKind, key: string, value: unknown): Promise<void> {
    this.entries.set(`v${this.version}:${kind}:${key}`, JSON.stringify(value));
  }

  async delete(kind: CacheKind, key: string): Promise<void> {
    this.entries.delete(`v${this.version}:${kind}:${key}`);
  }
}
