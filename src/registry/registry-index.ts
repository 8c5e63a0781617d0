import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { hexOf, isDigest, type Digest } from '../digest.ts';
import type { ImportedImage } from '../image/sources/archive/import-archive.ts';
import type { BlobStore } from '../store/blob-store.ts';
import { FsBlobStore } from '../store/fs-blob-store.ts';

/**
 * What the registry code remembers beside the store:
 *  - pulled images: image manifest digest → the ImportedImage it became (so pulling the same
 *    digest again does no network work beyond resolving the tag);
 *  - where blobs were seen: (registry host, blob digest) → repositories known to hold it (so a
 *    push can mount instead of upload).
 * Losing any of it only costs network work.
 */
export interface RegistryIndex {
  getPulled(manifestDigest: Digest): Promise<ImportedImage | null>;
  setPulled(manifestDigest: Digest, image: ImportedImage): Promise<void>;
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

  async getPulled(manifestDigest: Digest): Promise<ImportedImage | null> {
    const v = (await this.readJson(join(this.dir, 'pulled', `${hexOf(manifestDigest)}.json`))) as { manifestDigest?: string; image?: ImportedImage } | null;
    if (!v || v.manifestDigest !== manifestDigest || !v.image || !isDigest(v.image.configDigest) || !Array.isArray(v.image.layers)) return null;
    return v.image;
  }

  async setPulled(manifestDigest: Digest, image: ImportedImage): Promise<void> {
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
    // Most recent first; a few are plenty to try.
    await this.writeJson(this.blobPath(host, digest), [repository, ...repos].slice(0, 8));
  }
}

export class MemoryRegistryIndex implements RegistryIndex {
  private readonly pulled = new Map<Digest, ImportedImage>();
  private readonly blobs = new Map<string, string[]>();
  async getPulled(d: Digest) {
    return this.pulled.get(d) ?? null;
  }
  async setPulled(d: Digest, image: ImportedImage) {
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

const memoryIndexes = new WeakMap<BlobStore, RegistryIndex>();

/** For the filesystem store, files in `<DATA_DIR>/index/registry/`; else one in memory per store. */
export function defaultRegistryIndex(store: BlobStore): RegistryIndex {
  if (store instanceof FsBlobStore) return new FsRegistryIndex(join(store.root, 'index', 'registry'));
  let index = memoryIndexes.get(store);
  if (!index) memoryIndexes.set(store, (index = new MemoryRegistryIndex()));
  return index;
}
