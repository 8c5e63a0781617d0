import type { Readable } from 'node:stream';
import type { Digest } from '../digest.ts';
import type { BlobInfo, BlobStore, ByteRange, PutOptions, PutResult } from '../store/blob-store.ts';
import type { IndexHome } from '../store/store-index.ts';

/**
 * A blob store that counts the bytes of the blobs it adds (a put of a blob already stored
 * adds nothing), for any store implementation.
 */
export class WriteCountingStore implements BlobStore {
  constructor(
    private readonly inner: BlobStore,
    /** A prom-client Counter, or anything told the bytes. */
    private readonly written: { inc(bytes: number): void },
  ) {}

  /** The counted store's: counting changes nothing of what is remembered beside it. */
  get indexHome(): IndexHome {
    return this.inner.indexHome;
  }

  async put(source: Readable, opts?: PutOptions): Promise<PutResult> {
    const result = await this.inner.put(source, opts);
    if (result.created) this.written.inc(result.size);
    return result;
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
