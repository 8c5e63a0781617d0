import type { Readable } from 'node:stream';

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

/** The first `bytes` bytes of `stream` (fewer if it is shorter); the stream is destroyed. */
export async function readHead(stream: Readable, bytes: number): Promise<Buffer> {
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
 * archive bombs (a few MB of gzip, zstd, xz or bzip2 that would fill the disk). The same for
 * every compression and every use (contents, base archives, their layers, registry layers).
 */
export function unpackLimit(compressedSize: number): number {
  return Math.min(MAX_UNPACKED_BYTES, Math.max(UNPACK_FLOOR_BYTES, compressedSize * MAX_UNPACK_RATIO));
}

/** The decompression budget in words, for the error of a blob that goes over it. */
export const UNPACK_BUDGET_TEXT = `the decompression budget is ${MAX_UNPACK_RATIO} × the compressed size, at least ${UNPACK_FLOOR_BYTES / 1024 ** 3} GiB, at most ${MAX_UNPACKED_BYTES / 1024 ** 3} GiB`;
