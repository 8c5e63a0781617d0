import { createHash } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Digest } from '../../src/digest.ts';
import { BlobNotFoundError, BlobTooLargeError, DigestMismatchError } from '../../src/store/blob-store.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';

let root: string;
let store: FsBlobStore;
const digestOf = (s: string): Digest => `sha256:${createHash('sha256').update(s).digest('hex')}`;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'baler-store-'));
  store = await FsBlobStore.create(root);
});
afterEach(async () => rm(root, { recursive: true, force: true }));

const ingestIsEmpty = async () => expect(await readdir(join(root, 'ingest'))).toEqual([]);

describe('FsBlobStore', () => {
  it('stores by content digest, reads whole and by range', async () => {
    const put = await store.put(Readable.from(['hello ', 'world']));
    expect(put).toEqual({ digest: digestOf('hello world'), size: 11, created: true });
    expect(await store.stat(put.digest)).toEqual({ digest: put.digest, size: 11 });
    expect(await text(await store.open(put.digest))).toBe('hello world');
    expect(await text(await store.open(put.digest, { start: 6, end: 10 }))).toBe('world');
    await ingestIsEmpty();
  });

  it('a second put of the same content reports it existed', async () => {
    await store.put(Readable.from(['same']));
    const [a, b] = await Promise.all([store.put(Readable.from(['same'])), store.put(Readable.from(['same']))]);
    expect([a.created, b.created]).toEqual([false, false]);
    await ingestIsEmpty();
  });

  it('refuses content that does not match the expected digest, keeping nothing', async () => {
    await expect(store.put(Readable.from(['actual']), { expectedDigest: digestOf('claimed') })).rejects.toBeInstanceOf(DigestMismatchError);
    expect(await store.stat(digestOf('actual'))).toBeNull();
    await ingestIsEmpty();
  });

  it('stops at the size limit, keeping nothing', async () => {
    await expect(store.put(Readable.from(['x'.repeat(100)]), { maxBytes: 10 })).rejects.toBeInstanceOf(BlobTooLargeError);
    await ingestIsEmpty();
  });

  it('keeps nothing of a source that fails midway', async () => {
    const failing = new Readable({
      read() {
        this.push('part');
        this.destroy(new Error('client went away'));
      },
    });
    await expect(store.put(failing)).rejects.toThrow('client went away');
    await ingestIsEmpty();
    expect(await readdir(join(root, 'blobs', 'sha256'))).toEqual([]);
  });

  it('says a missing blob is missing', async () => {
    await expect(store.open(digestOf('nope'))).rejects.toBeInstanceOf(BlobNotFoundError);
    expect(await store.stat(digestOf('nope'))).toBeNull();
  });
});
