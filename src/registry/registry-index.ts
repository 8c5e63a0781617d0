import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { hexOf, isDigest, type Digest } from '../digest.ts';
import type { StoredImage } from '../image/image.ts';
import type { BlobStore } from '../store/blob-store.ts';
import { storeIndex, type IndexKind } from '../store/store-index.ts';

/**
 * What the registry code remembers beside the store:
 *  - pulled images: image manifest digest → the StoredImage it became (so pulling the same
 *    digest again does no network work beyond resolving the tag);
 *  - where blobs were seen: (registry host, blob digest) → repositories known to hold it (so a
 *    push can mount instead of upload).
 * Losing any of it only costs network work.
 */
export interface RegistryIndex {
  getPulled(manifestDigest: Digest): Promise<StoredImage | null>;
  setPulled(manifestDigest: Digest, image: StoredImage): Promise<void>;
  reposWithBlob(host: string, digest: Digest): Promise<string[]>;
  addBlobRepo(host: string, digest: Digest, repository: string): Promise<void>;
}

const safeHost = (host: string) => host.replace(/[^a-zA-Z0-9.-]/g, '_');

/**
 * JSON files under `<dir>`: `pulled/<manifest hex>.json`, `blobs/<host>/<blob hex>.json`,
 * each written to a temporary name and renamed (concurrent writers never leave half a file).
 */
export class FsRegistryIndex implements RegistryIndex {
  constructor(readonly dir: string) {}

  private async readJson(path: string): Promise<unknown> {
    try {
      return JSON.parse(await readFile(path, 'utf8'));
    } catch {
      return null;
    }
  }

  private async writeJson(path: string, value: unknown): Promise<void> {
    await mkdir(join(path, '..'), { recursive: true });
    const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      await writeFile(tmp, JSON.stringify(value));
      await rename(tmp, path);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  async getPulled(manifestDigest: Digest): Promise<StoredImage | null> {
    const raw = await readFile(join(this.dir, 'pulled', `${hexOf(manifestDigest)}.json`), 'utf8').catch(() => null);
    return raw === null ? null : parsePulled(raw, manifestDigest);
  }

  async setPulled(manifestDigest: Digest, image: StoredImage): Promise<void> {
    await this.writeJson(join(this.dir, 'pulled', `${hexOf(manifestDigest)}.json`), { manifestDigest, image });
  }

  private blobPath(host: string, digest: Digest): string {
    return join(this.dir, 'blobs', safeHost(host), `${hexOf(digest)}.json`);
  }

  async reposWithBlob(host: string, digest: Digest): Promise<string[]> {
    const v = await this.readJson(this.blobPath(host, digest));
    return Array.isArray(v) ? v.filter((r): r is string => typeof r === 'string') : [];
  }

  async addBlobRepo(host: string, digest: Digest, repository: string): Promise<void> {
    const repos = await this.reposWithBlob(host, digest);
    if (repos.includes(repository)) return;
    await this.writeJson(this.blobPath(host, digest), [repository, ...repos].slice(0, MAX_REPOS));
  }
}

export class MemoryRegistryIndex implements RegistryIndex {
  private readonly pulled = new Map<Digest, StoredImage>();
  private readonly blobs = new Map<string, string[]>();
  async getPulled(d: Digest) {
    return this.pulled.get(d) ?? null;
  }
  async setPulled(d: Digest, image: StoredImage) {
    this.pulled.set(d, image);
  }
  async reposWithBlob(host: string, digest: Digest) {
    return this.blobs.get(`${host} ${digest}`) ?? [];
  }
  async addBlobRepo(host: string, digest: Digest, repository: string) {
    const repos = this.blobs.get(`${host} ${digest}`) ?? [];
    if (!repos.includes(repository)) this.blobs.set(`${host} ${digest}`, [repository, ...repos].slice(0, 8));
  }
}

/** How long a Redis entry lives without being written (losing one only costs network work). */
const REDIS_TTL_S = 30 * 24 * 3600;
/** Repositories remembered per blob, most recent first; a few are plenty to try. */
const MAX_REPOS = 8;

/**
 * In Redis, shared by every host using one store (an S3 bucket): `baler:registry:pulled:<digest>`
 * (JSON, as the files) and `baler:registry:blob-repos:<host>:<digest>` (a list, most recent
 * first), each written in one atomic step.
 */
export class RedisRegistryIndex implements RegistryIndex {
  constructor(private readonly redis: Redis) {}

  async getPulled(manifestDigest: Digest): Promise<StoredImage | null> {
    const raw = await this.redis.get(`baler:registry:pulled:${manifestDigest}`);
    return raw === null ? null : parsePulled(raw, manifestDigest);
  }

  async setPulled(manifestDigest: Digest, image: StoredImage): Promise<void> {
    await this.redis.set(`baler:registry:pulled:${manifestDigest}`, JSON.stringify({ manifestDigest, image }), 'EX', REDIS_TTL_S);
  }

  private blobKey(host: string, digest: Digest): string {
    return `baler:registry:blob-repos:${safeHost(host)}:${digest}`;
  }

  async reposWithBlob(host: string, digest: Digest): Promise<string[]> {
    return this.redis.lrange(this.blobKey(host, digest), 0, MAX_REPOS - 1);
  }

  async addBlobRepo(host: string, digest: Digest, repository: string): Promise<void> {
    const key = this.blobKey(host, digest);
    await this.redis
      .multi()
      .lrem(key, 0, repository)
      .lpush(key, repository)
      .ltrim(key, 0, MAX_REPOS - 1)
      .expire(key, REDIS_TTL_S)
      .exec();
  }
}

function parsePulled(raw: string, manifestDigest: Digest): StoredImage | null {
  try {
    const v = JSON.parse(raw) as { manifestDigest?: string; image?: StoredImage } | null;
    if (!v || v.manifestDigest !== manifestDigest || !v.image || !isDigest(v.image.imageId) || !Array.isArray(v.image.layers)) return null;
    return v.image;
  } catch {
    return null;
  }
}

const REGISTRY_INDEX: IndexKind<RegistryIndex> = {
  inDir: (dir) => new FsRegistryIndex(join(dir, 'registry')),
  inRedis: (redis) => new RedisRegistryIndex(redis),
  inMemory: () => new MemoryRegistryIndex(),
};

/** The registry index kept beside `store` (`<DATA_DIR>/index/registry/`, Redis, or memory). */
export function registryIndexOf(store: BlobStore): RegistryIndex {
  return storeIndex(store, REGISTRY_INDEX);
}
