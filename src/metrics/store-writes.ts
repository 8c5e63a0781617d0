import type { Readable } from 'node:stream';
import type { BlobStore, PutOptions, PutResult } from '../store/blob-store.ts';
import { DelegatingStore } from '../store/delegating-store.ts';

/**
 * A blob store that counts the bytes of the blobs it adds (a put of a blob already stored
 * adds nothing), for any store implementation.
 */
export class WriteCountingStore extends DelegatingStore {
  constructor(
    inner: BlobStore,
    /** A prom-client Counter, or anything told the bytes. */
    private readonly written: { inc(bytes: number): void },
  ) {
    super(inner);
  }

  override async put(source: Readable, opts?: PutOptions): Promise<PutResult> {
    const result = await this.inner.put(source, opts);
    if (result.created) this.written.inc(result.size);
    return result;
  }
}
