import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat, unlink, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { hexOf, type Digest } from '../digest.ts';
import { BlobNotFoundError, DigestMismatchError, STALE_INGEST_MS, StoreFullError, type BlobInfo, type BlobStore, type ByteRange, type PutOptions, type PutResult } from './blob-store.ts';
import { IngestMeter } from './ingest-meter.ts';
import type { IndexHome } from './store-index.ts';

/**
 * Blob store on a local filesystem: `<root>/blobs/sha256/<hex>`, written through
 * `<root>/ingest/` and committed by rename, which is atomic within one filesystem.
 */
export class FsBlobStore implements BlobStore {
  private readonly blobDir: string;
  private readonly ingestDir: string;
  /** JSON files under `<root>/index/`, shared by every process using this data dir. */
  readonly indexHome: IndexHome;

  private constructor(readonly root: string) {
    this.indexHome = { kind: 'dir', dir: join(root, 'index') };
    this.blobDir = join(root, 'blobs', 'sha256');
    this.ingestDir = join(root, 'ingest');
  }

  static async create(root: string): Promise<FsBlobStore> {
    const store = new FsBlobStore(root);
    await mkdir(store.blobDir, { recursive: true });
    await mkdir(store.ingestDir, { recursive: true });
    await store.sweepIngest(STALE_INGEST_MS);
    return store;
  }

  async sweepIngest(olderThanMs: number): Promise<number> {
    const now = Date.now();
    let removed = 0;
    for (const name of await readdir(this.ingestDir)) {
      const path = join(this.ingestDir, name);
      const info = await stat(path).catch(() => null);
      if (info && now - info.mtimeMs > olderThanMs) {
        await rm(path, { force: true });
        removed++;
      }
    }
    return removed;
  }

  private pathOf(digest: Digest): string {
    return join(this.blobDir, hexOf(digest));
  }

  async put(source: Readable, opts: PutOptions = {}): Promise<PutResult> {
    const tmp = join(this.ingestDir, `${Date.now()}-${randomBytes(8).toString('hex')}`);
    const meter = new IngestMeter(opts.maxBytes);
    try {
      await pipeline(source, meter, createWriteStream(tmp, { flags: 'wx', highWaterMark: 1 << 20 }));
      const size = meter.bytes;
      const digest = meter.digest();
      if (opts.expectedDigest && opts.expectedDigest !== digest) {
        throw new DigestMismatchError(opts.expectedDigest, digest);
      }
      const final = this.pathOf(digest);
      if (await stat(final).catch(() => null)) {
        // Already stored (a re-upload, a rebuilt layer): the copy goes, unsynced.
        await unlink(tmp);
        // Written again: it is fresh for garbage collection's grace period.
        const now = new Date();
        await utimes(final, now, now).catch(() => {});
        return { digest, size, created: false };
      }
      // On disk before it gets its name: after a power cut a blob is whole or absent.
      const handle = await open(tmp, 'r');
      try {
        await handle.datasync();
      } finally {
        await handle.close();
      }
      await rename(tmp, final);
      return { digest, size, created: true };
    } catch (err) {
      await rm(tmp, { force: true });
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOSPC' || code === 'EDQUOT') throw new StoreFullError({ cause: err });
      throw err;
    }
  }

  async stat(digest: Digest): Promise<BlobInfo | null> {
    const info = await stat(this.pathOf(digest)).catch(() => null);
    return info ? { digest, size: info.size } : null;
  }

  async open(digest: Digest, range?: ByteRange): Promise<Readable> {
    const path = this.pathOf(digest);
    // Open first so that a missing blob is an error here, not later on the stream.
    const handle = await open(path, 'r').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') throw new BlobNotFoundError(digest);
      throw err;
    });
    // 1 MiB reads: a layer streams in a few dozen chunks per 50 MB, not eight hundred.
    return handle.createReadStream({ start: range?.start, end: range?.end, highWaterMark: 1 << 20 });
  }

  async *list(): AsyncIterable<BlobInfo & { modifiedMs: number }> {
    for (const name of await readdir(this.blobDir)) {
      if (!/^[a-f0-9]{64}$/.test(name)) continue;
      const info = await stat(join(this.blobDir, name)).catch(() => null);
      if (info) yield { digest: `sha256:${name}`, size: info.size, modifiedMs: info.mtimeMs };
    }
  }

  async delete(digest: Digest): Promise<void> {
    await rm(this.pathOf(digest), { force: true });
  }

  async ping(): Promise<void> {
    const probe = join(this.ingestDir, `.ping-${randomBytes(4).toString('hex')}`);
    const handle = await open(probe, 'w');
    await handle.close();
    await unlink(probe);
  }
}
