/** parallelGzip: whole gzip members, checked with zlib and the system gzip; same bytes whatever the concurrency or chunking; bounded memory. */
import { Readable, Writable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { BLOCK_SIZE, DICTIONARY_SIZE } from '../../../src/image/gzip/deflate-block.ts';
import { FINAL_EMPTY_BLOCK, GZIP_HEADER, gzipTrailer } from '../../../src/image/gzip/gzip-frame.ts';
import { parallelGzip } from '../../../src/image/gzip/parallel-gzip.ts';
import { chunked, mixedData, randomData, systemGzip, textData } from './support.ts';

const zlibCrc32 = (zlib as unknown as { crc32: (data: Uint8Array, prev?: number) => number }).crc32;

/** What parallelGzip must produce, built synchronously from the design. */
function referenceGzip(data: Buffer): Buffer {
  const pieces: Buffer[] = [];
  for (let offset = 0; offset < data.length; offset += BLOCK_SIZE) {
    const options: zlib.ZlibOptions = { level: 6, finishFlush: zlib.constants.Z_SYNC_FLUSH };
    if (offset > 0) options.dictionary = data.subarray(offset - DICTIONARY_SIZE, offset);
    pieces.push(zlib.deflateRawSync(data.subarray(offset, offset + BLOCK_SIZE), options));
  }
  return Buffer.concat([GZIP_HEADER, ...pieces, FINAL_EMPTY_BLOCK, gzipTrailer(zlibCrc32(data), data.length)]);
}

const gz = (input: Readable, concurrency?: number): Promise<Buffer> => buffer(parallelGzip(input, concurrency === undefined ? undefined : { concurrency }));

describe('round trip', () => {
  const cases: Array<[string, Buffer]> = [
    ['empty', Buffer.alloc(0)],
    ['1 byte', Buffer.from('x')],
    ['128 KiB - 1', mixedData(BLOCK_SIZE - 1, 'a')],
    ['exactly 128 KiB', mixedData(BLOCK_SIZE, 'b')],
    ['128 KiB + 1', mixedData(BLOCK_SIZE + 1, 'c')],
    ['6 MB random + text', mixedData(6_000_000, 'd')],
    ['3 MB text', textData(3_000_000, 'e')],
  ];
  it.each(cases)('%s: gunzipSync, gzip -dc and gzip -t agree', async (_name, data) => {
    const member = await gz(chunked(data, 65_536));
    expect(member.subarray(0, 10).equals(GZIP_HEADER)).toBe(true);
    expect(member.equals(referenceGzip(data))).toBe(true);
    expect(zlib.gunzipSync(member).equals(data)).toBe(true);
    const d = await systemGzip(['-dc'], member);
    expect(d.stderr).toBe('');
    expect(d.code).toBe(0);
    expect(d.stdout.equals(data)).toBe(true);
    const t = await systemGzip(['-t'], member);
    expect(t.code).toBe(0);
    expect(t.stderr).toBe('');
  });

  it('the system gzip rejects a corrupted member (the checks can fail)', async () => {
    const data = textData(BLOCK_SIZE * 2);
    const member = await gz(Readable.from([data]));
    const broken = Buffer.from(member);
    broken[broken.length - 5] = (broken[broken.length - 5] as number) ^ 0xff; // a CRC byte
    expect((await systemGzip(['-t'], broken)).code).not.toBe(0);
    expect(() => zlib.gunzipSync(broken)).toThrow();
  });
});

describe('determinism', () => {
  it('gives byte-identical output for concurrency 1, 2, 4, 8 and default, and for 64 KiB chunks, odd chunks and one chunk', async () => {
    const data = mixedData(3 * 1024 * 1024 + 4321, 'det');
    const want = referenceGzip(data);
    for (const concurrency of [1, 2, 4, 8, undefined]) {
      for (const size of [65_536, 1000, BLOCK_SIZE - 1, data.length]) {
        const got = await gz(chunked(data, size), concurrency);
        expect(got.equals(want), `concurrency ${concurrency}, chunks of ${size}`).toBe(true);
      }
    }
  });

  it('gives byte-identical output for 1-byte chunks', async () => {
    const data = mixedData(2 * BLOCK_SIZE + 777, 'bytes');
    const want = referenceGzip(data);
    for (const concurrency of [1, 2, 4, 8]) {
      expect((await gz(chunked(data, 1), concurrency)).equals(want), `concurrency ${concurrency}`).toBe(true);
    }
  });
});

describe('errors', () => {
  it('an input error destroys the output with that error (also through pipeline)', async () => {
    const boom = new Error('upstream went away');
    const input = new Readable({ read() {} });
    input.push(randomData(5 * BLOCK_SIZE));
    setTimeout(() => input.destroy(boom), 20);
    const out = parallelGzip(input);
    const sink = new Writable({ write: (_c, _e, cb) => cb() });
    await expect(pipeline(out, sink)).rejects.toBe(boom);
    expect(out.destroyed).toBe(true);
    expect(out.errored).toBe(boom);
  });

  it('destroying the output destroys the input', async () => {
    const input = new Readable({
      read() {
        this.push(randomData(BLOCK_SIZE, String(Math.random())));
      },
    });
    const out = parallelGzip(input, { concurrency: 2 });
    await new Promise<void>((resolve) => out.once('data', () => resolve()));
    out.destroy();
    await new Promise((r) => setImmediate(r));
    expect(input.destroyed).toBe(true);
  });

  it('destroying the output before reading it destroys the input', async () => {
    const input = Readable.from([Buffer.from('never read')]);
    const out = parallelGzip(input);
    out.destroy();
    await new Promise((r) => setImmediate(r));
    expect(input.destroyed).toBe(true);
  });
});

describe('memory', () => {
  it('compresses 512 MiB from a generator with RSS growth under 100 MB', async () => {
    const MiB = 1024 * 1024;
    const TOTAL = 512 * MiB;
    let crc = 0;
    // fresh, touched buffers each time (so keeping them would show in RSS); compressible, so this takes seconds
    function* generate(): Generator<Buffer> {
      for (let i = 0; i < TOTAL / MiB; i++) {
        const chunk = Buffer.allocUnsafe(MiB);
        for (let o = 0; o < MiB; o += 4096) chunk.fill(`chunk ${i} at ${o} `, o, o + 4096);
        crc = zlibCrc32(chunk, crc);
        yield chunk;
      }
    }
    const before = process.memoryUsage().rss;
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 10);
    const out: Buffer[] = [];
    try {
      await pipeline(
        Readable.from(generate()),
        parallelGzip,
        new Writable({
          write(chunk: Buffer, _encoding, callback) {
            out.push(chunk);
            peak = Math.max(peak, process.memoryUsage().rss);
            callback();
          },
        }),
      );
    } finally {
      clearInterval(sampler);
    }
    const growthMB = (peak - before) / 1e6;
    expect(growthMB, `RSS grew by ${growthMB.toFixed(1)} MB`).toBeLessThan(100);
    // and the output is right: the trailer, and a streaming gunzip of it
    const member = Buffer.concat(out);
    expect(member.readUInt32LE(member.length - 8)).toBe(crc);
    expect(member.readUInt32LE(member.length - 4)).toBe(TOTAL % 2 ** 32);
    let inflated = 0;
    let inflatedCrc = 0;
    await pipeline(
      Readable.from([member]),
      zlib.createGunzip(),
      new Writable({
        write(chunk: Buffer, _encoding, callback) {
          inflated += chunk.length;
          inflatedCrc = zlibCrc32(chunk, inflatedCrc);
          callback();
        },
      }),
    );
    expect(inflated).toBe(TOTAL);
    expect(inflatedCrc).toBe(crc);
  });
});
