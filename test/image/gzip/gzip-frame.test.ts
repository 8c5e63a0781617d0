/** The gzip framing constants and crc32Combine, against zlib and the system gzip. */
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { crc32, crc32Js } from '../../../src/image/gzip/crc32.ts';
import { crc32Combine, FINAL_EMPTY_BLOCK, GZIP_HEADER, gzipTrailer } from '../../../src/image/gzip/gzip-frame.ts';
import { randomData, systemGzip, textData } from './support.ts';

const zlibCrc32 = (zlib as unknown as { crc32: (data: Uint8Array, prev?: number) => number }).crc32;

it('runs on a Node with zlib.crc32 (20.15+), which these tests use as the reference', () => {
  expect(typeof zlibCrc32).toBe('function');
});

describe('framing', () => {
  it('has the fixed 10-byte header: deflate, no flags, mtime 0, XFL 0, OS unknown', () => {
    expect([...GZIP_HEADER]).toEqual([0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0xff]);
  });

  it('header + FINAL_EMPTY_BLOCK + trailer(0, 0) is the gzip of nothing, for zlib and gzip -t', async () => {
    expect([...FINAL_EMPTY_BLOCK]).toEqual([0x03, 0x00]);
    expect(zlib.inflateRawSync(FINAL_EMPTY_BLOCK).length).toBe(0);
    const member = Buffer.concat([GZIP_HEADER, FINAL_EMPTY_BLOCK, gzipTrailer(0, 0)]);
    expect(member.length).toBe(20);
    expect(zlib.gunzipSync(member).length).toBe(0);
    const t = await systemGzip(['-t'], member);
    expect(t.stderr).toBe('');
    expect(t.code).toBe(0);
  });

  it('trailer is crc32 then isize = length mod 2^32, little-endian', () => {
    expect(gzipTrailer(0xdeadbeef, 5).toString('hex')).toBe('efbeadde05000000');
    expect(gzipTrailer(0x01020304, 2 ** 32 + 7).toString('hex')).toBe('0403020107000000');
    expect(gzipTrailer(-1, 2 ** 32 - 1).toString('hex')).toBe('ffffffffffffffff');
    expect(() => gzipTrailer(0, -1)).toThrow(RangeError);
    expect(() => gzipTrailer(0, 1.5)).toThrow(RangeError);
  });

  it('makes a member the system gzip accepts around zlib raw deflate output', async () => {
    const data = textData(300_000);
    const member = Buffer.concat([GZIP_HEADER, zlib.deflateRawSync(data), gzipTrailer(zlibCrc32(data), data.length)]);
    const d = await systemGzip(['-dc'], member);
    expect(d.code).toBe(0);
    expect(d.stdout.equals(data)).toBe(true);
    // and a wrong CRC is caught (the test can fail)
    const bad = Buffer.concat([GZIP_HEADER, zlib.deflateRawSync(data), gzipTrailer(zlibCrc32(data) ^ 1, data.length)]);
    expect((await systemGzip(['-t'], bad)).code).not.toBe(0);
  });
});

describe('crc32', () => {
  it('the JS fallback and the exported crc32 agree with zlib.crc32, also when continued', () => {
    const data = randomData(10_000, 'crc');
    for (const [a, b] of [
      [0, 0],
      [0, 1],
      [1, 10_000],
      [3_333, 7_777],
      [0, 10_000],
    ] as const) {
      const part = data.subarray(a, b);
      expect(crc32Js(part)).toBe(zlibCrc32(part));
      expect(crc32(part)).toBe(zlibCrc32(part));
      expect(crc32Js(part, 0x12345678)).toBe(zlibCrc32(part, 0x12345678));
    }
    expect(crc32Js(Buffer.from('123456789'))).toBe(0xcbf43926); // the CRC-32 check value
  });
});

describe('crc32Combine', () => {
  const data = Buffer.concat([randomData(200_000, 'combine'), textData(100_000, 'combine')]);

  it('equals zlib.crc32 of A+B over random splits, including empty A and empty B', () => {
    const rnd = randomData(4 * 200, 'splits');
    const cuts: Array<[number, number]> = [
      [0, 0],
      [0, 17],
      [17, 17],
      [data.length, data.length],
      [0, data.length],
      [data.length - 1, data.length],
    ];
    for (let i = 0; i < 200; i++) {
      const x = rnd.readUInt32LE(4 * i) % (data.length + 1);
      const y = rnd.readUInt32LE((4 * i + 4) % rnd.length) % (data.length + 1);
      cuts.push([Math.min(x, y), Math.max(x, y)]);
    }
    for (const [start, cut] of cuts) {
      const a = data.subarray(start, cut);
      const b = data.subarray(cut, Math.min(data.length, cut + (cut - start) + 1000));
      const want = zlibCrc32(Buffer.concat([a, b]));
      expect(crc32Combine(zlibCrc32(a), zlibCrc32(b), b.length), `A=[${start},${cut}) |B|=${b.length}`).toBe(want);
    }
    // len2 = 0 leaves crc1; crc1 = 0 (an empty A) gives crc2
    expect(crc32Combine(0xcafebabe, 0, 0)).toBe(0xcafebabe);
    expect(crc32Combine(0, 0x1234abcd, 999)).toBe(0x1234abcd);
  });

  it('combines many pieces in a row like a gzip plan does', () => {
    let crc = 0;
    let offset = 0;
    for (const size of [0, 1, 511, 512, 131_072, 0, 70_000, 98_000]) {
      const piece = data.subarray(offset, offset + size);
      crc = crc32Combine(crc, zlibCrc32(piece), piece.length);
      offset += size;
    }
    expect(crc).toBe(zlibCrc32(data.subarray(0, offset)));
  });

  it('handles len2 past 2^32 (checked against zlib.crc32 over 4 GiB + 1000 bytes of zeros)', () => {
    const len2 = 2 ** 32 + 1000;
    const zeros = Buffer.alloc(64 * 1024 * 1024);
    let crcZeros = 0;
    for (let left = len2; left > 0; left -= zeros.length) crcZeros = zlibCrc32(zeros.subarray(0, Math.min(left, zeros.length)), crcZeros);
    const a = Buffer.from('prefix before four gibibytes of zeros');
    let want = zlibCrc32(a);
    for (let left = len2; left > 0; left -= zeros.length) want = zlibCrc32(zeros.subarray(0, Math.min(left, zeros.length)), want);
    expect(crc32Combine(zlibCrc32(a), crcZeros, len2)).toBe(want);
    // a length wrapped to 32 bits gives another answer (the test can fail)
    expect(crc32Combine(zlibCrc32(a), crcZeros, len2 % 2 ** 32)).not.toBe(want);
  });

  it('refuses lengths that are not non-negative safe integers', () => {
    expect(() => crc32Combine(1, 2, -1)).toThrow(RangeError);
    expect(() => crc32Combine(1, 2, 0.5)).toThrow(RangeError);
    expect(() => crc32Combine(1, 2, 2 ** 53)).toThrow(RangeError);
  });
});
