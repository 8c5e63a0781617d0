import type { Readable } from 'node:stream';
import type { Digest } from '../digest.ts';
import type { BlobInfo, BlobStore, ByteRange, PutOptions, PutResult } from './blob-store.ts';
import type { IndexHome } from './store-index.ts';

/**
 * A store that passes every call on to another: the base of wrappers that change what one
 * call does (a put counted, a put charged) and leave the rest, the index home included (what
 * is remembered beside a store is the same through every wrapper of it).
 */
export class DelegatingStore implements BlobStore {
  constructor(protected readonly inner: BlobStore) {}

  get indexHome(): IndexHome {
    return this.inner.indexHome;
  }

  put(source: Readable, opts?: PutOptions): Promise<PutResult> {
    return this.inner.put(source, opts);
  }

  stat(digest: Digest): Promise<BlobInfo | null> {
    return this.inner.stat(digest);
  }

  open(digest: Digest, range?: ByteRange): Promise<Readable> {
    return this.inner.open(digest, range);
  }

  ping(): Promise<void> {
    return this.inner.ping();
  }

  list(): AsyncIterable<BlobInfo & { modifiedMs: number }> {
    return this.inner.list();
  }

  delete(digest: Digest): Promise<void> {
    return this.inner.delete(digest);
  }

  sweepIngest(olderThanMs: number): Promise<number> {
    return this.inner.sweepIngest(olderThanMs);
  }
}
