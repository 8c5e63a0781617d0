/** deflatePiece / deflateBytesPiece: pieces that concatenate, against zlib, the system gzip and a reference built from the design. */
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { BLOCK_SIZE, DICTIONARY_SIZE } from '../../../src/image/gzip/deflate-block.ts';
import { deflateBytesPiece, deflatePiece } from '../../../src/image/gzip/deflate-piece.ts';
import { windowFor } from '../../../src/image/gzip/piece-stream.ts';
import { crc32Combine, FINAL_EMPTY_BLOCK, GZIP_HEADER, gzipTrailer } from '../../../src/image/gzip/gzip-frame.ts';
import { chunked, mixedData, randomData, systemGzip, textData } from './support.ts';

const zlibCrc32 = (zlib as unknown as { crc32: (data: Uint8Array, prev?: number) => number }).crc32;
const SYNC = { finishFlush: zlib.constants.Z_SYNC_FLUSH };

/** The design, written out synchronously: 128 KiB blocks, each deflated with the previous block's last 32 KiB as dictionary, ending in a sync flush. */
function referencePiece(data: Buffer, level = 6): Buffer {
  const out: Buffer[] = [];
  for (let offset = 0; offset < data.length; offset += BLOCK_SIZE) {
    const options: zlib.ZlibOptions = { level, ...SYNC };
    if (offset > 0) options.dictionary = data.subarray(offset - DICTIONARY_SIZE, offset);
    out.push(zlib.deflateRawSync(data.subarray(offset, offset + BLOCK_SIZE), options));
  }
  return Buffer.concat(out);
}

function gzipOfPieces(pieces: Array<{ bytes: Buffer; crc32: number; rawLength: number }>): Buffer {
  let crc = 0;
  let length = 0;
  for (const p of pieces) {
    crc = crc32Combine(crc, p.crc32, p.rawLength);
    length += p.rawLength;
  }
  return Buffer.concat([GZIP_HEADER, ...pieces.map((p) => p.bytes), FINAL_EMPTY_BLOCK, gzipTrailer(crc, length)]);
}

async function piece(input: Readable, opts?: { level?: number; concurrency?: number }) {
  const { stream, info } = deflatePiece(input, opts);
  const bytes = await buffer(stream);
  return { bytes, ...(await info) };
}

const SIZES = [0, 1, DICTIONARY_SIZE, BLOCK_SIZE - 1, BLOCK_SIZE, BLOCK_SIZE + 1, 3 * BLOCK_SIZE + 5];

describe('the design (checked first: everything else builds on it)', () => {
  it('deflateRaw pieces with a 32 KiB dictionary and a sync flush concatenate into one stream that inflateRaw and gunzip decode', async () => {
    const data = mixedData(5 * BLOCK_SIZE + 12_345);
    const pieces = referencePiece(data);
    expect(zlib.inflateRawSync(Buffer.concat([pieces, FINAL_EMPTY_BLOCK])).equals(data)).toBe(true);
    const member = Buffer.concat([GZIP_HEADER, pieces, FINAL_EMPTY_BLOCK, gzipTrailer(zlibCrc32(data), data.length)]);
    expect(zlib.gunzipSync(member).equals(data)).toBe(true);
    const d = await systemGzip(['-dc'], member);
    expect(d.code).toBe(0);
    expect(d.stdout.equals(data)).toBe(true);
    // the dictionary matters: text compresses better with it than without
    const text = textData(4 * BLOCK_SIZE);
    const without = Buffer.concat([0, 1, 2, 3].map((i) => zlib.deflateRawSync(text.subarray(i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE), { level: 6, ...SYNC })));
    expect(referencePiece(text).length).toBeLessThan(without.length);
  });
});

describe('deflatePiece', () => {
  it.each(SIZES)('gives the reference bytes for %i bytes: non-final, byte-aligned, with the right info', async (size) => {
    const data = mixedData(size, `size-${size}`);
    const made = await piece(Readable.from([data]));
    expect(made.bytes.equals(referencePiece(data))).toBe(true);
    expect(made.rawLength).toBe(size);
    expect(made.crc32).toBe(zlibCrc32(data));
    expect(made.compressedLength).toBe(made.bytes.length);
    if (size === 0) {
      expect(made.bytes.length).toBe(0);
    } else {
      // ends with a sync flush (an empty stored block) and has no final block
      expect(made.bytes.subarray(-4).toString('hex')).toBe('0000ffff');
      expect(zlib.inflateRawSync(made.bytes, SYNC).equals(data)).toBe(true);
      expect(() => zlib.inflateRawSync(made.bytes)).toThrow(/unexpected end of file/);
    }
    expect(zlib.inflateRawSync(Buffer.concat([made.bytes, FINAL_EMPTY_BLOCK])).equals(data)).toBe(true);
  });

  it('gives the same bytes whatever the concurrency and the chunking (Uint8Array and string chunks too)', async () => {
    const data = mixedData(6 * BLOCK_SIZE + 999);
    const want = referencePiece(data);
    for (const concurrency of [1, 2, 3, 8]) {
      for (const size of [7, 65_536, BLOCK_SIZE + 3, data.length]) {
        const made = await piece(chunked(data, size), { concurrency });
        expect(made.bytes.equals(want), `concurrency ${concurrency}, chunks of ${size}`).toBe(true);
      }
    }
    const u8 = Readable.from([new Uint8Array(data.buffer, data.byteOffset, 100), data.subarray(100)]);
    expect((await piece(u8)).bytes.equals(want)).toBe(true);
    const text = textData(BLOCK_SIZE + 10);
    expect((await piece(Readable.from([text.toString('latin1').replace(/[^\x20-\x7e\n]/g, '.')]))).bytes.equals(referencePiece(text))).toBe(true);
  });

  it('honours the level, and refuses bad options', async () => {
    const data = textData(2 * BLOCK_SIZE + 1);
    for (const level of [1, 9]) {
      const made = await piece(Readable.from([data]), { level });
      expect(made.bytes.equals(referencePiece(data, level)), `level ${level}`).toBe(true);
    }
    // Level 0 (stored) is the one level whose bytes also depend on zlib's output buffer size
    // (deflate_stored sizes blocks by it): ours is fixed per block length, so it is still
    // deterministic, but not the reference's bytes.
    const stored = await piece(Readable.from([data]), { level: 0 });
    expect(stored.bytes.length).toBeGreaterThan(data.length);
    expect(zlib.inflateRawSync(Buffer.concat([stored.bytes, FINAL_EMPTY_BLOCK])).equals(data)).toBe(true);
    for (const concurrency of [1, 4]) expect((await piece(chunked(data, 1000), { level: 0, concurrency })).bytes.equals(stored.bytes)).toBe(true);
    expect((await piece(Readable.from([data]), { level: 1 })).bytes.equals(referencePiece(data, 6))).toBe(false);
    for (const opts of [{ level: 10 }, { level: -1 }, { level: 1.5 }, { concurrency: 0 }, { concurrency: 1000 }, { concurrency: 2.5 }]) {
      expect(() => deflatePiece(Readable.from([data]), opts), JSON.stringify(opts)).toThrow(RangeError);
    }
  });

  it('pieces of A and B, concatenated and framed with crc32Combine, are a valid gzip of A+B', async () => {
    const a = mixedData(2 * BLOCK_SIZE + 77, 'A');
    const b = textData(BLOCK_SIZE + 5, 'B');
    for (const [x, y] of [
      [a, b],
      [b, a],
      [a, Buffer.alloc(0)],
      [Buffer.alloc(0), b],
      [Buffer.from('x'), Buffer.from('y')],
    ] as const) {
      const member = gzipOfPieces([await piece(Readable.from([x])), await piece(chunked(y, 1000))]);
      const both = Buffer.concat([x, y]);
      expect(zlib.gunzipSync(member).equals(both)).toBe(true);
      const t = await systemGzip(['-t'], member);
      expect(t.stderr).toBe('');
      expect(t.code).toBe(0);
      const d = await systemGzip(['-dc'], member);
      expect(d.stdout.equals(both)).toBe(true);
    }
  });

  it('an input error destroys the output with that error and rejects info', async () => {
    const boom = new Error('disk on fire');
    const input = new Readable({ read() {} });
    input.push(randomData(3 * BLOCK_SIZE));
    setTimeout(() => input.destroy(boom), 20);
    const { stream, info } = deflatePiece(input);
    await expect(buffer(stream)).rejects.toBe(boom);
    await expect(info).rejects.toBe(boom);
    expect(stream.destroyed).toBe(true);
  });

  it('an input error before any data also propagates', async () => {
    const boom = new Error('no such blob');
    const input = new Readable({ read() {} });
    process.nextTick(() => input.destroy(boom));
    const { stream, info } = deflatePiece(input);
    await expect(buffer(stream)).rejects.toBe(boom);
    await expect(info).rejects.toBe(boom);
  });

  it('stops reading its input while nobody reads its output (backpressure), and resumes', async () => {
    let pulled = 0;
    const total = 64 * BLOCK_SIZE;
    const source = randomData(total, 'bp');
    const input = new Readable({
      highWaterMark: 16 * 1024,
      read() {
        const chunk = source.subarray(pulled, pulled + 16 * 1024);
        pulled += chunk.length;
        this.push(chunk.length > 0 ? chunk : null);
      },
    });
    const concurrency = 4;
    const { stream, info } = deflatePiece(input, { concurrency });
    stream.pause();
    stream.read(0); // start it, then take nothing
    await new Promise((r) => setTimeout(r, 500));
    // the window of blocks + one partial block + about one block in the output buffer + the input's own buffer
    expect(pulled).toBeGreaterThan(0);
    expect(pulled).toBeLessThanOrEqual((windowFor(concurrency) + 2) * BLOCK_SIZE + 32 * 1024);
    expect(pulled).toBeLessThan(total / 2);
    const bytes = await buffer(stream);
    expect(pulled).toBe(total);
    expect(bytes.equals(referencePiece(source))).toBe(true);
    expect((await info).rawLength).toBe(total);
  });

  it('destroying the output destroys the input and rejects info', async () => {
    let served = 0;
    const input = new Readable({
      read() {
        served++;
        this.push(randomData(BLOCK_SIZE, `d${served}`));
      },
    });
    const { stream, info } = deflatePiece(input);
    await new Promise<void>((resolve) => stream.once('data', () => resolve()));
    stream.destroy();
    await expect(info).rejects.toThrow(/destroyed before the end/);
    await new Promise((r) => setImmediate(r));
    expect(input.destroyed).toBe(true);
  });
});

describe('deflateBytesPiece', () => {
  it.each([...SIZES, 9 * BLOCK_SIZE + 3])('gives the same bytes and info as deflatePiece for %i bytes', async (size) => {
    const data = mixedData(size, `bytes-${size}`);
    const made = await deflateBytesPiece(data);
    const streamed = await piece(chunked(data, 4096));
    expect(made.bytes.equals(streamed.bytes)).toBe(true);
    expect(made.bytes.equals(referencePiece(data))).toBe(true);
    expect({ crc32: made.crc32, rawLength: made.rawLength, compressedLength: made.compressedLength }).toEqual({
      crc32: streamed.crc32,
      rawLength: streamed.rawLength,
      compressedLength: streamed.compressedLength,
    });
    expect(made.compressedLength).toBe(made.bytes.length);
  });

  it("does not keep zlib's whole output buffer alive behind a small piece", async () => {
    const made = await deflateBytesPiece(textData(BLOCK_SIZE, 'small'));
    expect(made.bytes.length).toBeLessThan(BLOCK_SIZE / 2);
    expect(made.bytes.buffer.byteLength).toBeLessThan(BLOCK_SIZE / 2);
  });

  it('frames many small pieces (tar headers, JSON) and stream pieces into one gzip', async () => {
    const parts = [Buffer.alloc(512, 1), Buffer.from('{"a":1}'), randomData(BLOCK_SIZE + 1, 'r'), Buffer.alloc(0), Buffer.alloc(1024)];
    const pieces = [];
    for (const [i, p] of parts.entries()) pieces.push(i % 2 === 0 ? await deflateBytesPiece(p, { level: 6 }) : await piece(Readable.from([p])));
    const member = gzipOfPieces(pieces);
    expect(zlib.gunzipSync(member).equals(Buffer.concat(parts))).toBe(true);
    expect((await systemGzip(['-t'], member)).code).toBe(0);
  });
});
