/** Ranges of stored blobs read through one stream where the order allows, reopened where not. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Digest } from '../../src/digest.ts';
import { BlobRangeReader } from '../../src/image/blob-range-reader.ts';
import type { ByteRange } from '../../src/store/blob-store.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';

let dir: string;
let store: FsBlobStore;
let a: Digest;
let b: Digest;
const bytesA = Buffer.from(Array.from({ length: 3_000_000 }, (_, i) => (i * 7) % 251));
const bytesB = Buffer.from('the other blob');

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'baler-range-reader-'));
  store = await FsBlobStore.create(dir);
  a = (await store.put(Readable.from([bytesA]))).digest;
  b = (await store.put(Readable.from([bytesB]))).digest;
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

/** A store that counts opens. */
function counting() {
  const opens: Array<{ digest: Digest; range?: ByteRange }> = [];
  return {
    opens,
    open: (digest: Digest, range?: ByteRange) => {
      opens.push({ digest, range });
      return store.open(digest, range);
    },
  };
}

async function read(reader: BlobRangeReader, blob: Digest, start: number, length: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of reader.read(blob, start, length)) parts.push(chunk);
  return Buffer.concat(parts);
}

it('reads ascending ranges with small gaps through one open', async () => {
  const s = counting();
  const reader = new BlobRangeReader({ ...store, open: s.open } as unknown as FsBlobStore);
  const ranges = [
    [0, 100],
    [612, 5000],
    [5612, 1_500_000],
    [1_505_612 + 512, 1000],
    [2_400_000, 1000],
  ] as const;
  for (const [start, length] of ranges) expect((await read(reader, a, start, length)).equals(bytesA.subarray(start, start + length))).toBe(true);
  reader.close();
  expect(s.opens).toHaveLength(1);
});

it('reopens for a range behind, far ahead, or in another blob, and still gives the right bytes', async () => {
  const s = counting();
  const reader = new BlobRangeReader({ ...store, open: s.open } as unknown as FsBlobStore);
  const steps: Array<[Digest, number, number]> = [
    [a, 2_000_000, 10],
    [a, 5, 10],
    [b, 4, 5],
    [a, 2_900_000, 100_000],
    [a, 0, 3],
  ];
  for (const [blob, start, length] of steps) {
    const whole = blob === a ? bytesA : bytesB;
    expect((await read(reader, blob, start, length)).equals(whole.subarray(start, start + length))).toBe(true);
  }
  reader.close();
  expect(s.opens.map((o) => [o.digest === a ? 'a' : 'b', o.range?.start ?? 0])).toEqual([
    ['a', 2_000_000],
    ['a', 5],
    ['b', 4],
    ['a', 2_900_000],
    ['a', 0],
  ]);
});

it('fails when a range runs past the end of the blob', async () => {
  const reader = new BlobRangeReader(store);
  await expect(read(reader, b, 10, 100)).rejects.toThrow(/ended before byte 110/);
  reader.close();
});

/** A store that counts the bytes its opened streams deliver. */
function countingBytes() {
  const counted = { bytes: 0, opens: 0 };
  return {
    counted,
    open: async (digest: Digest, range?: ByteRange) => {
      counted.opens++;
      const stream = await store.open(digest, range);
      stream.on('data', (chunk: Buffer) => (counted.bytes += chunk.length));
      return stream;
    },
  };
}

it('reads what is asked, not a chunk per range, when ranges come in shuffled order (a tar not in path order)', async () => {
  const s = countingBytes();
  const reader = new BlobRangeReader({ ...store, open: s.open } as unknown as FsBlobStore);
  // 2,000 ranges of 100 bytes, 1,000 bytes apart, in an order that keeps going backwards.
  const starts = Array.from({ length: 2000 }, (_, i) => ((i * 7919) % 2000) * 1000);
  await read(reader, a, 2_999_000, 100); // the first open reads ahead to the end: it is not known yet to be random
  const before = s.counted.bytes;
  for (const start of starts) expect((await read(reader, a, start, 100)).equals(bytesA.subarray(start, start + 100))).toBe(true);
  reader.close();
  // 200 KB asked for; a chunk per range would be gigabytes.
  expect(s.counted.bytes - before).toBeLessThan(2000 * 100 * 20);
});

it('reads ahead again, doubling, once ranges follow each other after a jump back', async () => {
  const s = countingBytes();
  const reader = new BlobRangeReader({ ...store, open: s.open } as unknown as FsBlobStore);
  await read(reader, a, 2_000_000, 10);
  await read(reader, a, 0, 10); // backwards: random access from here
  const opens = s.counted.opens;
  // 1,000 ranges in order, 1,000 bytes apart: a handful of opens, not a thousand.
  for (let i = 1; i <= 1000; i++) expect((await read(reader, a, i * 1000, 10)).equals(bytesA.subarray(i * 1000, i * 1000 + 10))).toBe(true);
  reader.close();
  expect(s.counted.opens - opens).toBeLessThan(20);
});
