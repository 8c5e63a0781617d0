import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { Digest } from '../digest.ts';
import type { BlobStore } from '../store/blob-store.ts';
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
    const put = await store.put(pipeThrough(source, gunzip));
    return put.digest;
  } catch (err) {
    source.destroy();
    if ((err as NodeJS.ErrnoException).code?.startsWith('Z_')) {
      throw new LayerInputError(`blob ${digest} is not valid gzip: ${(err as Error).message}`, { cause: err });
    }
    throw err;
  }
}
