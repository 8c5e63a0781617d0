/**
 * What every BlobStore must do, run against each store (fs-blob-store.test.ts,
 * s3-blob-store.test.ts): content addressing, ranges, atomic visibility whatever happens to
 * the writer (bad digest, too large, failing source, concurrent writers, a writer killed
 * mid-upload), listing and deleting.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { buffer, text } from 'node:stream/consumers';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Digest } from '../../src/digest.ts';
import { BlobNotFoundError, BlobTooLargeError, DigestMismatchError, type BlobStore } from '../../src/store/blob-store.ts';
import { startScript } from '../support/script-process.ts';

export interface StoreHarness {
  store: BlobStore;
  /** Environment under which `openBlobStore(loadConfig())` opens this same store in another process. */
  env: Record<string, string>;
  /** What lies in the store's ingest area (files; objects and unfinished multipart uploads). */
  ingestLeftovers(): Promise<string[]>;
  close(): Promise<void>;
}

const CRASHING_WRITER = fileURLToPath(new URL('./crashing-writer.ts', import.meta.url));
const digestOf = (data: string | Buffer): Digest => `sha256:${createHash('sha256').update(data).digest('hex')}`;
const unique = (label: string) => `${label} ${randomBytes(8).toString('hex')}`;

async function listed(store: BlobStore): Promise<Map<Digest, { size: number; modifiedMs: number }>> {
  const all = new Map<Digest, { size: number; modifiedMs: number }>();
  for await (const { digest, size, modifiedMs } of store.list()) all.set(digest, { size, modifiedMs });
  return all;
}

export function describeBlobStoreContract(name: string, open: () => Promise<StoreHarness>): void {
  describe(`${name}: the BlobStore contract`, () => {
    let h: StoreHarness;
    let store: BlobStore;
    beforeAll(async () => {
      h = await open();
      store = h.store;
    });
    afterAll(async () => h?.close());
    const ingestIsEmpty = async () => expect(await h.ingestLeftovers()).toEqual([]);

    it('stores by content digest, reads whole and by range', async () => {
      const content = unique('hello world');
      const put = await store.put(Readable.from([content.slice(0, 6), content.slice(6)]));
      expect(put).toEqual({ digest: digestOf(content), size: content.length, created: true });
      expect(await store.stat(put.digest)).toEqual({ digest: put.digest, size: content.length });
      expect(await text(await store.open(put.digest))).toBe(content);
      expect(await text(await store.open(put.digest, { start: 6, end: 10 }))).toBe(content.slice(6, 11));
      await ingestIsEmpty();
    });

    it('stores an empty blob', async () => {
      const put = await store.put(Readable.from([]));
      expect(put.digest).toBe(digestOf(''));
      expect(put.size).toBe(0);
      expect(await text(await store.open(put.digest))).toBe('');
      await ingestIsEmpty();
    });

    it('streams a blob of many parts, and reads ranges across their seams', async () => {
      // 20 MiB: several upload parts for the S3 store (8 MiB each).
      const chunks = Array.from({ length: 20 }, () => randomBytes(1024 * 1024));
      const whole = Buffer.concat(chunks);
      const put = await store.put(Readable.from(chunks), { expectedDigest: digestOf(whole) });
      expect(put).toEqual({ digest: digestOf(whole), size: whole.length, created: true });
      const seam = 8 * 1024 * 1024;
      expect((await buffer(await store.open(put.digest, { start: seam - 100, end: seam + 99 }))).equals(whole.subarray(seam - 100, seam + 100))).toBe(true);
      expect(digestOf(await buffer(await store.open(put.digest)))).toBe(put.digest);
      await ingestIsEmpty();
    });

    it('concurrent puts of the same new content all succeed with one blob', async () => {
      const content = unique('raced');
      const puts = await Promise.all([1, 2, 3].map(() => store.put(Readable.from([content]))));
      for (const put of puts) expect(put).toMatchObject({ digest: digestOf(content), size: content.length });
      expect(puts.some((p) => p.created)).toBe(true);
      expect(await text(await store.open(digestOf(content)))).toBe(content);
      await ingestIsEmpty();
    });

    it('a second put of the same content reports it existed', async () => {
      const content = unique('same');
      expect((await store.put(Readable.from([content]))).created).toBe(true);
      const [a, b] = await Promise.all([store.put(Readable.from([content])), store.put(Readable.from([content]))]);
      expect([a.created, b.created]).toEqual([false, false]);
      await ingestIsEmpty();
    });

    it('refuses content that does not match the expected digest, keeping nothing', async () => {
      const content = unique('actual');
      await expect(store.put(Readable.from([content]), { expectedDigest: digestOf('claimed') })).rejects.toBeInstanceOf(DigestMismatchError);
      expect(await store.stat(digestOf(content))).toBeNull();
      expect((await listed(store)).has(digestOf(content))).toBe(false);
      await ingestIsEmpty();
    });

    it('stops at the size limit, keeping nothing; the limit itself is allowed', async () => {
      const content = unique('x'.repeat(100));
      await expect(store.put(Readable.from([content]), { maxBytes: 10 })).rejects.toBeInstanceOf(BlobTooLargeError);
      expect(await store.stat(digestOf(content))).toBeNull();
      // Past a whole upload part too (the S3 store's parts are 8 MiB).
      const big = Array.from({ length: 12 }, () => randomBytes(1024 * 1024));
      await expect(store.put(Readable.from(big), { maxBytes: 10 * 1024 * 1024 })).rejects.toBeInstanceOf(BlobTooLargeError);
      expect(await store.stat(digestOf(Buffer.concat(big)))).toBeNull();
      await ingestIsEmpty();
      expect(await store.put(Readable.from([content]), { maxBytes: content.length })).toMatchObject({ size: content.length });
    });

    it('keeps nothing of a source that fails midway', async () => {
      const before = await listed(store);
      let sent = 0;
      const failing = new Readable({
        read() {
          // Past the first upload part, so that the S3 store has a multipart upload to abort.
          if (sent++ < 10) this.push(randomBytes(1024 * 1024));
          else this.destroy(new Error('client went away'));
        },
      });
      await expect(store.put(failing)).rejects.toThrow('client went away');
      await ingestIsEmpty();
      expect(await listed(store)).toEqual(before);
    });

    it('says a missing blob is missing', async () => {
      const missing = digestOf(unique('nope'));
      await expect(store.open(missing)).rejects.toBeInstanceOf(BlobNotFoundError);
      expect(await store.stat(missing)).toBeNull();
    });

    it('lists every blob with its size and write time, and deletes', async () => {
      const started = Date.now();
      const contents = [unique('one'), unique('two'), unique('three')];
      for (const c of contents) await store.put(Readable.from([c]));
      const all = await listed(store);
      for (const c of contents) {
        const entry = all.get(digestOf(c));
        expect(entry?.size).toBe(c.length);
        // Servers keep write times to the second.
        expect(entry?.modifiedMs).toBeGreaterThanOrEqual(Math.floor(started / 1000) * 1000 - 1000);
      }
      await store.delete(digestOf(contents[0] as string));
      await store.delete(digestOf(contents[0] as string));
      expect((await listed(store)).has(digestOf(contents[0] as string))).toBe(false);
      await expect(store.open(digestOf(contents[0] as string))).rejects.toBeInstanceOf(BlobNotFoundError);
      expect(await store.stat(digestOf(contents[1] as string))).not.toBeNull();
    });

    it('answers a ping', async () => {
      await store.ping();
      await ingestIsEmpty();
    });

    it('never shows what a writer killed mid-upload left, and sweeps it once stale', async () => {
      const before = await listed(store);
      const { child, output, exited } = startScript(CRASHING_WRITER, { ...h.env, CRASH_MIB: '20' });
      try {
        const deadline = Date.now() + 60_000;
        while (!output().includes('sent\n') || (await h.ingestLeftovers()).length === 0) {
          if (child.exitCode !== null || Date.now() > deadline) throw new Error(`the writer did not get going:\n${output()}`);
          await new Promise((r) => setTimeout(r, 100));
        }
      } finally {
        child.kill('SIGKILL');
        await exited;
      }
      const left = await h.ingestLeftovers();
      expect(left.length).toBeGreaterThan(0);
      // Nothing of it is a blob: not the bytes sent, not any prefix.
      expect(await listed(store)).toEqual(before);
      const sent = Buffer.concat(Array.from({ length: 20 }, (_, i) => Buffer.alloc(1024 * 1024, i)));
      expect(await store.stat(digestOf(sent))).toBeNull();

      // A fresh leftover may be an upload still going: kept. A stale one goes.
      expect(await store.sweepIngest(60_000)).toBe(0);
      expect(await h.ingestLeftovers()).toEqual(left);
      await new Promise((r) => setTimeout(r, 2100));
      expect(await store.sweepIngest(1000)).toBe(left.length);
      await ingestIsEmpty();
      expect(await listed(store)).toEqual(before);
    });
  });
}
