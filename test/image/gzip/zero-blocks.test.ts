/**
 * Blocks of zeros (a sparse file's holes, written out) reuse one compressed block: the bytes
 * must be exactly what zlib gives for each block on its own, whatever mix of zeros and data.
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import zlib from 'node:zlib';
import { expect, it } from 'vitest';
import { BLOCK_SIZE, DICTIONARY_SIZE } from '../../../src/image/gzip/deflate-block.ts';
import { deflateBytesPiece, deflatePiece } from '../../../src/image/gzip/deflate-piece.ts';

/** The piece as the format defines it, block by block with zlib and no shortcut. */
function reference(data: Buffer, level = 6): Buffer {
  const out: Buffer[] = [];
  for (let at = 0; at < data.length; at += BLOCK_SIZE) {
    const options: zlib.ZlibOptions = { level, finishFlush: zlib.constants.Z_SYNC_FLUSH };
    if (at > 0) options.dictionary = data.subarray(at - DICTIONARY_SIZE, at);
    out.push(zlib.deflateRawSync(data.subarray(at, at + BLOCK_SIZE), options));
  }
  return Buffer.concat(out);
}

it("gives zlib's bytes for zeros after data, data after zeros, zeros at the start and a short zero block at the end", async () => {
  const data = Buffer.concat([Buffer.alloc(3 * BLOCK_SIZE), randomBytes(1000), Buffer.alloc(BLOCK_SIZE + 20_000), randomBytes(10), Buffer.alloc(5 * BLOCK_SIZE + 12_345)]);
  const want = reference(data);
  for (let round = 0; round < 2; round++) {
    const piece = await deflateBytesPiece(data);
    expect(piece.bytes.equals(want)).toBe(true);
  }
  const streamed = deflatePiece(Readable.from([data.subarray(0, 777_777), data.subarray(777_777)]));
  const chunks: Buffer[] = [];
  for await (const chunk of streamed.stream) chunks.push(chunk as Buffer);
  expect(Buffer.concat(chunks).equals(want)).toBe(true);
  expect((await streamed.info).rawLength).toBe(data.length);
  expect(zlib.inflateRawSync(Buffer.concat([want, Buffer.from([3, 0])])).equals(data)).toBe(true);
});
