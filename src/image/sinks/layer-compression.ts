import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { Redis } from 'ioredis';
import { pipeline } from 'node:stream/promises';
import { hexOf, isDigest, type Digest } from '../../digest.ts';
import type { BlobStore } from '../../store/blob-store.ts';
import { storeIndex, type IndexKind } from '../../store/store-index.ts';
import { pieceFormatId } from '../gzip/deflate-block.ts';
import { parallelGzip } from '../gzip/parallel-gzip.ts';
import type { Layer } from '../layer.ts';
import type { OutputCompression } from './output-format.ts';

export const OCI_LAYER_MEDIA_TYPES: Record<OutputCompression, string> = {
  none: 'application/vnd.oci.image.layer.v1.tar',
  gzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  zstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
};

/**
 * The exact method of each kind. Part of the cache key, so changing a level never serves a
 * blob made another way. gzip: parallelGzip (pigz-style blocks compressed on the thread pool;
 * the bytes do not depend on the thread count; no file name, mtime 0, fixed OS byte).
 * zstd: Debian's `zstd` binary, one worker (`-T1`: the output does not depend on the CPU
 * count), no progress output; reading stdin, it records no content size.
 */
export const GZIP_LEVEL = 6;
export const ZSTD_LEVEL = 3;
export const ZSTD_BIN = 'zstd';
const METHODS = { gzip: `gzip-${pieceFormatId(GZIP_LEVEL)}`, zstd: `zstd-${ZSTD_LEVEL}` } as const;

export interface CompressedBlob {
  digest: Digest;
  size: number;
  /** For deflate pieces (gzip-plan.ts): the CRC-32 and length of the uncompressed bytes. */
  crc32?: number;
  rawLength?: number;
}

/** Remembers which stored blob is the compressed form of which layer. */
export interface CompressedLayerIndex {
  get(method: string, diffId: Digest): Promise<CompressedBlob | null>;
  set(method: string, diffId: Digest, blob: CompressedBlob): Promise<void>;
}

/**
 * The index as small JSON files, one per layer and method: `<dir>/<method>/<diffId hex>.json`
 * holding `{"diffId","method","digest","size"}`. Each file is written to a temporary name and
 * renamed, so concurrent writers (two downloads, two workers) never leave half a file, and
 * there is no shared file to read-modify-write. A file that is missing, unreadable or names
 * a blob the store no longer has only costs a recompression.
 */
export class FsCompressedLayerIndex implements CompressedLayerIndex {
  constructor(readonly dir: string) {}

  private pathOf(method: string, diffId: Digest): string {
    return join(this.dir, method, `${hexOf(diffId)}.json`);
  }

  async get(method: string, diffId: Digest): Promise<CompressedBlob | null> {
    const raw = await readFile(this.pathOf(method, diffId), 'utf8').catch(() => null);
    return raw === null ? null : parseEntry(raw, method, diffId);
  }

  async set(method: string, diffId: Digest, blob: CompressedBlob): Promise<void> {
    const path = this.pathOf(method, diffId);
    await mkdir(join(this.dir, method), { recursive: true });
    const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      await writeFile(tmp, JSON.stringify({ diffId, method, ...blob }));
      await rename(tmp, path);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }
}

/** An index in this process's memory (a store without a shared index, tests). */
export class MemoryCompressedLayerIndex implements CompressedLayerIndex {
  private readonly entries = new Map<string, CompressedBlob>();

  async get(method: string, diffId: Digest): Promise<CompressedBlob | null> {
    return this.entries.get(`${method} ${diffId}`) ?? null;
  }

  async set(method: string, diffId: Digest, blob: CompressedBlob): Promise<void> {
    this.entries.set(`${method} ${diffId}`, blob);
  }
}

/** How long a Redis index entry lives without being used (a stale one costs a recompression). */
const REDIS_INDEX_TTL_S = 30 * 24 * 3600;

/**
 * The index in Redis, shared by every host using one store (an S3 bucket): a key per layer and
 * method, `baler:layer-index:<method>:<diffId>`, holding the same JSON as the files. Each entry
 * is one SET, so concurrent writers never leave half an entry; reading one renews it.
 */
export class RedisCompressedLayerIndex implements CompressedLayerIndex {
  constructor(private readonly redis: Redis) {}

  private keyOf(method: string, diffId: Digest): string {
    return `baler:layer-index:${method}:${diffId}`;
  }

  async get(method: string, diffId: Digest): Promise<CompressedBlob | null> {
    const raw = await this.redis.getex(this.keyOf(method, diffId), 'EX', REDIS_INDEX_TTL_S);
    return raw === null ? null : parseEntry(raw, method, diffId);
  }

  async set(method: string, diffId: Digest, blob: CompressedBlob): Promise<void> {
    await this.redis.set(this.keyOf(method, diffId), JSON.stringify({ diffId, method, ...blob }), 'EX', REDIS_INDEX_TTL_S);
  }
}

/** An entry as stored, if it is whole and about this layer and method. */
function parseEntry(raw: string, method: string, diffId: Digest): CompressedBlob | null {
  try {
    const entry = JSON.parse(raw) as Partial<CompressedBlob & { diffId: string; method: string }>;
    if (entry.diffId !== diffId || entry.method !== method) return null;
    if (typeof entry.digest !== 'string' || !isDigest(entry.digest) || !Number.isSafeInteger(entry.size)) return null;
    const blob: CompressedBlob = { digest: entry.digest, size: entry.size as number };
    if (Number.isSafeInteger(entry.crc32) && Number.isSafeInteger(entry.rawLength)) Object.assign(blob, { crc32: entry.crc32, rawLength: entry.rawLength });
    return blob;
  } catch {
    return null;
  }
}

const COMPRESSED_LAYER_INDEX: IndexKind<CompressedLayerIndex> = {
  inDir: (dir) => new FsCompressedLayerIndex(join(dir, 'compressed-layers')),
  inRedis: (redis) => new RedisCompressedLayerIndex(redis),
  inMemory: () => new MemoryCompressedLayerIndex(),
};

/** The compressed-layer index kept beside `store` (`<DATA_DIR>/index/compressed-layers/`, Redis, or memory). */
export function layerIndexOf(store: BlobStore): CompressedLayerIndex {
  return storeIndex(store, COMPRESSED_LAYER_INDEX);
}

/** Compress a stream; `done` settles when the compressor has finished (or failed). */
export function compressStream(source: Readable, kind: 'gzip' | 'zstd'): { stream: Readable; done: Promise<void> } {
  if (kind === 'gzip') {
    const gzip = parallelGzip(source, { level: GZIP_LEVEL });
    const done = new Promise<void>((resolve, reject) => {
      gzip.once('end', resolve);
      gzip.once('error', reject);
    });
    return { stream: gzip, done };
  }
  const child = spawn(ZSTD_BIN, ['-q', '-c', `-${ZSTD_LEVEL}`, '-T1', '--no-progress'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (text: string) => {
    if (stderr.length < 4096) stderr += text;
  });
  const done = new Promise<void>((resolve, reject) => {
    child.once('error', (err: NodeJS.ErrnoException) => reject(err.code === 'ENOENT' ? new Error(`the '${ZSTD_BIN}' program is not installed (Debian package zstd)`, { cause: err }) : err));
    child.once('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`${ZSTD_BIN} failed (${signal ?? `exit code ${code}`}): ${stderr.trim()}`));
    });
  });
  // EPIPE when zstd dies early: its exit status tells the story.
  pipeline(source, child.stdin).catch(() => child.kill('SIGKILL'));
  return { stream: child.stdout, done };
}

/**
 * The layer compressed with `kind`, as a blob in the store: its digest and size (what a
 * manifest lists). Compression is deterministic, and the result is cached: the compressed
 * blob is content-addressed in the store, and the index maps (method, diff_id) to it, so a
 * layer is compressed once per method whatever the number of images or downloads using it.
 * `none` is the stored layer itself.
 */
export async function compressedLayer(store: BlobStore, layer: Pick<Layer, 'diffId' | 'size'>, kind: OutputCompression, index: CompressedLayerIndex = layerIndexOf(store)): Promise<CompressedBlob> {
  if (kind === 'none') return { digest: layer.diffId, size: layer.size };

  const method = METHODS[kind];
  const cached = await index.get(method, layer.diffId);
  if (cached) {
    const info = await store.stat(cached.digest);
    if (info && info.size === cached.size) return cached;
  }

  const source = await store.open(layer.diffId);
  const { stream, done } = compressStream(source, kind);
  // The store's own failure (a full disk) is the one to report: the compressor's comes second.
  done.catch(() => {});
  let put;
  try {
    put = await store.put(stream);
    await done;
  } catch (err) {
    source.destroy();
    stream.destroy();
    throw err;
  }
  const blob = { digest: put.digest, size: put.size };
  await index.set(method, layer.diffId, blob);
  return blob;
}
