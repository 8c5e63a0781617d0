import type { BlobStore } from '../store/blob-store.ts';

export interface Usage {
  bytes: number;
  blobs: number;
}

/**
 * What the store holds, by walking it (`list()`): exact for any store and whoever wrote or
 * deleted, where a counter kept beside the writes would drift with every crash between a
 * write and its count. A walk costs a stat (or one list request per 1000 blobs on S3) per
 * blob, so it runs at most once per `maxAgeMs`, one at a time, and a scrape gets the last
 * walk's result while the next one runs (only the very first scrape waits for one).
 */
export class StoreUsage {
  #last: (Usage & { atMs: number }) | undefined;
  #walking: Promise<Usage> | undefined;

  constructor(
    private readonly store: BlobStore,
    private readonly maxAgeMs: number,
  ) {}

  async current(): Promise<Usage> {
    const last = this.#last;
    if (last && Date.now() - last.atMs < this.maxAgeMs) return last;
    const walk = this.#walk();
    if (!last) return walk;
    walk.catch(() => {
      /* the next scrape tries again; this one has the last value */
    });
    return last;
  }

  #walk(): Promise<Usage> {
    this.#walking ??= (async () => {
      try {
        const usage = { bytes: 0, blobs: 0 };
        for await (const blob of this.store.list()) {
          usage.bytes += blob.size;
          usage.blobs++;
        }
        this.#last = { ...usage, atMs: Date.now() };
        return usage;
      } finally {
        this.#walking = undefined;
      }
    })();
    return this.#walking;
  }
}
