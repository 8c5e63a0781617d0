import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { Digest } from '../digest.ts';
import { BlobTooLargeError, type BlobStore } from '../store/blob-store.ts';
import { pipeThrough } from '../streams.ts';
import { LayerInputError } from './layer-entry.ts';

export type CompressionKind = 'none' | 'gzip' | 'zstd' | 'xz' | 'bzip2';

const MAGIC: Array<[CompressionKind, number[]]> = [
  ['gzip', [0x1f, 0x8b]],
  ['zstd', [0x28, 0xb5, 0x2f, 0xfd]],
  ['xz', [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
  ['bzip2', [0x42, 0x5a, 0x68]],
];

export function detectCompression(head: Buffer): CompressionKind {
  for (const [kind, magic] of MAGIC) {
    if (head.length >= magic.length && magic.every((byte, i) => head[i] === byte)) return kind;
  }
  return 'none';
}

async function readHead(stream: Readable, bytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    chunks.push(chunk);
    length += chunk.length;
    if (length >= bytes) break;
  }
  stream.destroy();
  return Buffer.concat(chunks).subarray(0, bytes);
}

/** No decompressed blob may exceed this, whatever its compressed size. */
export const MAX_UNPACKED_BYTES = 64 * 1024 ** 3;
/** Decompressing may multiply the size by this much at most (above the floor below). */
export const MAX_UNPACK_RATIO = 200;
const UNPACK_FLOOR_BYTES = 1024 ** 3;

/**
 * How large the decompressed form of `compressedSize` bytes may become: a guard against
 * archive bombs (a few MB of gzip or zstd that would fill the disk).
 */
export function unpackLimit(compressedSize: number): number {
  return Math.min(MAX_UNPACKED_BYTES, Math.max(UNPACK_FLOOR_BYTES, compressedSize * MAX_UNPACK_RATIO));
}

/**
 * The digest of the uncompressed form of a stored blob: the blob itself when it is not
 * compressed, else a decompressed copy put in the store (content-addressed, so shared).
 */
export async function uncompressedBlob(store: BlobStore, digest: Digest): Promise<Digest> {
  const info = await store.stat(digest);
  if (!info) throw new LayerInputError(`blob ${digest} not found`);
  if (info.size === 0) return digest;
  const kind = detectCompression(await readHead(await store.open(digest, { start: 0, end: 7 }), 8));
  if (kind === 'none') return digest;
  if (kind !== 'gzip') throw new LayerInputError(`blob ${digest} is ${kind}-compressed; only gzip is supported for contents`);
  const gunzip = createGunzip();
  const source = await store.open(digest);
  try {
    const put = await store.put(pipeThrough(source, gunzip), { maxBytes: unpackLimit(info.size) });
    return put.digest;
  } catch (err) {
    source.destroy();
    if (err instanceof BlobTooLargeError) {
      throw new LayerInputError(`blob ${digest} decompresses to more than ${err.limit} bytes (an archive bomb?)`, { cause: err });
    }
    if ((err as NodeJS.ErrnoException).code?.startsWith('Z_')) {
      throw new LayerInputError(`blob ${digest} is not valid gzip: ${(err as Error).message}`, { cause: err });
    }
    throw err;
  }
}
