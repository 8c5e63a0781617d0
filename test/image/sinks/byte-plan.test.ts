/** Archives assembled from stored blobs: byte plans, their ranges, and their gzip made of cached pieces. */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestPlan, openPlan, planEtag, planSize, type Segment } from '../../../src/image/sinks/byte-plan.ts';
import { DEFLATE_PIECE_METHOD, gzipBytePlan, isWholeBlobPlan } from '../../../src/image/sinks/gzip-plan.ts';
import { FsBlobStore } from '../../../src/store/fs-blob-store.ts';
import { run } from '../../support/run.ts';

// Compared by digest: vitest's deep equality of megabyte buffers takes seconds.
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let dir: string;
let store: FsBlobStore;
let big: Buffer;
let plan: Segment[];
let expected: Buffer;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'baler-byte-plan-'));
  store = await FsBlobStore.create(dir);
  // Half random, half text: both kinds of deflate block.
  big = Buffer.concat([randomBytes(700_000), Buffer.from('line of text, again and again\n'.repeat(30_000))]);
  const blob = (await store.put(Readable.from([big]))).digest;
  const small = (await store.put(Readable.from([Buffer.from('0123456789')]))).digest;
  plan = [{ bytes: Buffer.from('head:') }, { blob, offset: 0, length: big.length }, { bytes: Buffer.from(':mid:') }, { blob: small, offset: 3, length: 4 }, { bytes: Buffer.from(':end') }];
  expected = Buffer.concat([Buffer.from('head:'), big, Buffer.from(':mid:3456:end')]);
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

describe('byte plans', () => {
  it('read whole, give the planned bytes, size and digest', async () => {
    expect(planSize(plan)).toBe(expected.length);
    expect(sha(await buffer(openPlan(plan, store)))).toBe(sha(expected));
    expect(await digestPlan(plan, store)).toEqual({ digest: `sha256:${createHash('sha256').update(expected).digest('hex')}`, size: expected.length });
  });

  it('read any range alone, across segment boundaries', async () => {
    const cuts = [0, 4, 5, 6, 1000, big.length + 4, big.length + 5, big.length + 9, expected.length - 1];
    for (const start of cuts) {
      for (const end of cuts.filter((e) => e >= start)) {
        expect(sha(await buffer(openPlan(plan, store, { start, end }))), `${start}-${end}`).toBe(sha(expected.subarray(start, end + 1)));
      }
    }
  });

  it('fail the stream when a blob is shorter than planned', async () => {
    const short = (await store.put(Readable.from([Buffer.from('abc')]))).digest;
    await expect(
      buffer(
        openPlan(
          [
            { blob: short, offset: 0, length: 3 },
            { blob: short, offset: 1, length: 5 },
          ],
          store,
        ),
      ),
    ).rejects.toThrow();
  });

  it('have an ETag that changes with any byte or blob, and not otherwise', () => {
    const same = plan.map((s) => ({ ...s }));
    expect(planEtag(same)).toBe(planEtag(plan));
    expect(planEtag([...plan.slice(0, -1), { bytes: Buffer.from(':enD') }])).not.toBe(planEtag(plan));
  });
});

describe('gzip of a byte plan', () => {
  const whole = () => plan.filter((s) => 'bytes' in s || ('blob' in s && s.offset === 0));
  const wholeBytes = () => Buffer.concat([Buffer.from('head:'), big, Buffer.from(':mid::end')]);

  it('is one gzip member that gunzip and gzip -t take, and decompresses to the plan', async () => {
    expect(isWholeBlobPlan(plan)).toBe(false);
    expect(isWholeBlobPlan(whole())).toBe(true);
    const gz = await gzipBytePlan(whole(), store);
    const bytes = await buffer(openPlan(gz, store));
    expect(bytes.length).toBe(planSize(gz));
    expect(sha(gunzipSync(bytes))).toBe(sha(wholeBytes()));
    const file = join(dir, 'out.gz');
    await writeFile(file, bytes);
    const test = await run('gzip', ['-t', file]);
    expect(test.code, test.stderr).toBe(0);
    // Ranges of the compressed form work too.
    expect(sha(await buffer(openPlan(gz, store, { start: 10, end: 5000 })))).toBe(sha(bytes.subarray(10, 5001)));
  });

  it('compresses each blob once, and gives the same bytes from the cached piece', async () => {
    const pieces = async () => (await readdir(join(dir, 'index', 'compressed-layers', DEFLATE_PIECE_METHOD))).length;
    const first = await buffer(openPlan(await gzipBytePlan(whole(), store), store));
    const count = await pieces();
    expect(count).toBe(1);
    const again = await gzipBytePlan(whole(), store);
    expect(await pieces()).toBe(count);
    expect(again.filter((s) => 'blob' in s)).toHaveLength(1);
    expect(sha(await buffer(openPlan(again, store)))).toBe(sha(first));
  });

  it('refuses ranges that are not whole blobs', async () => {
    await expect(gzipBytePlan(plan, store)).rejects.toThrow(/whole blobs only/);
  });
});
