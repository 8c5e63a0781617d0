/**
 * Raw deflate "pieces": each one is a non-final, byte-aligned run of deflate blocks (it ends
 * with a sync flush), so pieces made apart concatenate into one deflate stream; end it with
 * FINAL_EMPTY_BLOCK and frame it with gzip-frame.ts. The bytes of a piece depend only on its
 * input and the level: deflateBytesPiece(x) and deflatePiece(a stream of x) give the same bytes,
 * whatever the chunking or concurrency.
 */
import type { Readable } from 'node:stream';
import { crc32 } from './crc32.ts';
import { BLOCK_SIZE, checkLevel, deflateBlock, DICTIONARY_SIZE } from './deflate-block.ts';
import { defaultConcurrency, pieceStream, type DeflatePieceInfo, type ParallelDeflateOptions } from './piece-stream.ts';

export type { DeflatePieceInfo, ParallelDeflateOptions } from './piece-stream.ts';

/**
 * Raw deflate of the whole input as one NON-final, byte-aligned piece (ends with a sync flush),
 * so pieces concatenate. Compresses 128 KiB blocks in parallel on the libuv threadpool (see
 * pieceStream for memory bounds, backpressure and errors). An empty input gives an empty piece.
 */
export function deflatePiece(input: Readable, opts?: ParallelDeflateOptions): { stream: Readable; info: Promise<DeflatePieceInfo> } {
  return pieceStream(input, opts);
}

/** Same for bytes already in memory (small framing data: tar headers, JSON); same bytes as deflatePiece would give. */
export async function deflateBytesPiece(data: Buffer, opts?: { level?: number }): Promise<{ bytes: Buffer } & DeflatePieceInfo> {
  const level = checkLevel(opts?.level);
  const concurrency = defaultConcurrency();
  const blocks: Buffer[] = [];
  for (let offset = 0; offset < data.length; offset += BLOCK_SIZE) blocks.push(data.subarray(offset, offset + BLOCK_SIZE));
  const outputs: Buffer[] = new Array<Buffer>(blocks.length);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < blocks.length) {
      const i = next++;
      const dictionary = i > 0 ? (blocks[i - 1] as Buffer).subarray(BLOCK_SIZE - DICTIONARY_SIZE) : undefined;
      outputs[i] = await deflateBlock(blocks[i] as Buffer, dictionary, level);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, blocks.length) }, lane));
  const bytes = outputs.length === 1 ? (outputs[0] as Buffer) : Buffer.concat(outputs);
  return { bytes, crc32: crc32(data), rawLength: data.length, compressedLength: bytes.length };
}
