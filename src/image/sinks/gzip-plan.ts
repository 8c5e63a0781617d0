import type { Digest } from '../../digest.ts';
import type { BlobStore } from '../../store/blob-store.ts';
import { pieceFormatId } from '../gzip/deflate-block.ts';
import { deflateBytesPiece, deflatePiece } from '../gzip/deflate-piece.ts';
import { crc32Combine, FINAL_EMPTY_BLOCK, GZIP_HEADER, gzipTrailer } from '../gzip/gzip-frame.ts';
import { compactPlan, type BytePlan, type Segment } from './byte-plan.ts';
import { layerIndexOf, type CompressedLayerIndex } from './layer-compression.ts';

/**
 * How a blob's deflate piece is made (block and dictionary size, level, zlib version); part of
 * its cache key, so a piece made another way — or by another zlib, whose bytes may differ — is
 * never served.
 */
export const DEFLATE_PIECE_METHOD = pieceFormatId();

interface Piece {
  segment: Segment;
  crc32: number;
  rawLength: number;
}

/**
 * The whole blob as a raw deflate piece (not final, byte-aligned) kept in the store, made on
 * first use and found by the index afterwards: a layer shared by a hundred images is
 * compressed, and stored compressed, once.
 */
async function blobPiece(store: BlobStore, blob: Digest, length: number, index: CompressedLayerIndex): Promise<Piece> {
  const cached = await index.get(DEFLATE_PIECE_METHOD, blob);
  if (cached && cached.crc32 !== undefined && cached.rawLength === length) {
    const info = await store.stat(cached.digest);
    if (info && info.size === cached.size) return { segment: { blob: cached.digest, offset: 0, length: cached.size }, crc32: cached.crc32, rawLength: length };
  }
  const source = await store.open(blob);
  const { stream, info } = deflatePiece(source);
  // The store's own failure (a full disk) is the one to report; the compressor then only
  // says its output was cut, so its outcome is read after the store's.
  info.catch(() => {});
  let put;
  try {
    put = await store.put(stream);
  } catch (err) {
    source.destroy();
    stream.destroy();
    throw err;
  }
  const made = await info;
  if (made.rawLength !== length) {
    throw new Error(`blob ${blob} has ${made.rawLength} bytes; a gzip plan takes whole blobs only (${length} planned)`);
  }
  await index.set(DEFLATE_PIECE_METHOD, blob, { digest: put.digest, size: put.size, crc32: made.crc32, rawLength: made.rawLength });
  return { segment: { blob: put.digest, offset: 0, length: put.size }, crc32: made.crc32, rawLength: made.rawLength };
}

/**
 * The gzip of a byte plan, itself a byte plan: one gzip member whose deflate stream is the
 * concatenation of pieces (pigz's trick: each piece ends byte-aligned with a sync flush), so
 * held bytes (tar headers, JSON) are compressed per request in microseconds and each whole
 * blob (a layer) is compressed once and reused. The result has an exact size and supports
 * ranges like the uncompressed plan. Blob ranges that are not whole blobs are refused: such
 * plans (a flattened rootfs) are compressed as a stream instead.
 */
export async function gzipBytePlan(plan: BytePlan, store: BlobStore, index: CompressedLayerIndex = layerIndexOf(store)): Promise<Segment[]> {
  const out: Segment[] = [{ bytes: GZIP_HEADER }];
  let crc = 0;
  let rawLength = 0;
  for (const s of plan) {
    let piece: Piece;
    if ('bytes' in s) {
      const made = await deflateBytesPiece(s.bytes);
      piece = { segment: { bytes: made.bytes }, crc32: made.crc32, rawLength: made.rawLength };
    } else if ('zeros' in s) {
      throw new Error('a gzip plan takes held bytes and whole blobs only, not runs of zeros');
    } else {
      if (s.offset !== 0) throw new Error(`a gzip plan takes whole blobs only, not ${s.blob} from offset ${s.offset}`);
      piece = await blobPiece(store, s.blob, s.length, index);
    }
    crc = crc32Combine(crc, piece.crc32, piece.rawLength);
    rawLength += piece.rawLength;
    out.push(piece.segment);
  }
  out.push({ bytes: Buffer.concat([FINAL_EMPTY_BLOCK, gzipTrailer(crc, rawLength)]) });
  return compactPlan(out);
}

/** Whether `gzipBytePlan` takes this plan: held bytes and whole blobs from their start, nothing else. */
export function isWholeBlobPlan(plan: BytePlan): boolean {
  return plan.every((s) => 'bytes' in s || ('blob' in s && s.offset === 0));
}
