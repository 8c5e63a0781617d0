import type { Digest } from '../digest.ts';
import type { BlobRangeReader } from './blob-range-reader.ts';
import type { SparseSegments } from './tar-sparse.ts';
import { zeroBytes } from './zero-bytes.ts';

/**
 * Where a file's bytes lie in a stored blob: from `offset` on, all of them; or, for a sparse
 * file read from a tar, only its segments' bytes, back to back, the rest being zeros.
 */
export interface StoredData {
  blob: Digest;
  offset: number;
  sparse?: SparseSegments;
}

/** The data of a tar entry indexed from `blob` (its sparse map included), for a file of a tree. */
export function storedDataOf(blob: Digest, header: { dataOffset: number; sparse?: SparseSegments }): StoredData {
  return header.sparse ? { blob, offset: header.dataOffset, sparse: header.sparse } : { blob, offset: header.dataOffset };
}

/**
 * The `size` bytes of a file stored in a blob, read by range: a sparse file comes out as the
 * file it stands for, its segments read from the blob and zeros between them (slices of one
 * buffer, so memory does not grow with the holes). Fails if the blob ends first.
 */
export async function* readStoredData(reader: BlobRangeReader, data: StoredData, size: number): AsyncGenerator<Buffer> {
  for (const piece of storedDataPieces(data, size)) {
    if ('zeros' in piece) yield* zeroBytes(piece.zeros);
    else yield* reader.read(piece.blob, piece.offset, piece.length);
  }
}

/** The same bytes as pieces, without reading them: runs of zeros and blob ranges, in order. O(segments). */
export function* storedDataPieces(data: StoredData, size: number): Generator<{ zeros: number } | { blob: Digest; offset: number; length: number }> {
  const segments = data.sparse;
  if (!segments) {
    yield { blob: data.blob, offset: data.offset, length: size };
    return;
  }
  let at = 0;
  let stored = data.offset;
  for (let i = 0; i < segments.length; i += 2) {
    const start = segments[i] ?? 0;
    const length = segments[i + 1] ?? 0;
    if (start > at) yield { zeros: start - at };
    yield { blob: data.blob, offset: stored, length };
    stored += length;
    at = start + length;
  }
  if (size > at) yield { zeros: size - at };
}
