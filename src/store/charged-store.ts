import { randomUUID } from 'node:crypto';
import { pipeline, Transform, type Readable, type TransformCallback } from 'node:stream';
import type { TenantQuota } from '../auth/tenant-quota.ts';
import type { Digest } from '../digest.ts';
import { BlobNotFoundError, type BlobInfo, type BlobStore, type PutOptions, type PutResult } from './blob-store.ts';
import { DelegatingStore } from './delegating-store.ts';

/**
 * The store as one tenant writes to it: every blob put is charged to the tenant, against its
 * quota, while it streams. Bytes are reserved before they reach the store (QuotaExceededError
 * when they do not fit: the store discards the ingest, nothing is kept), and once the blob is
 * committed the reservation becomes its charge — nothing more when the tenant was charged for
 * it already. Reading is not charged.
 */
export class ChargedStore extends DelegatingStore {
  constructor(
    inner: BlobStore,
    private readonly quota: TenantQuota,
    readonly tenant: string,
  ) {
    super(inner);
  }

  override async put(source: Readable, opts: PutOptions = {}): Promise<PutResult> {
    const id = randomUUID();
    const held = await this.heldCopy(opts.expectedDigest);
    const reserved = { held: 0 };
    // Renewed while the bytes flow, however slowly: only a writer that died loses its reservation.
    const renewal = held ? undefined : setInterval(() => void this.quota.renew(this.tenant, id).catch(() => {}), this.quota.settings.reservationTtlMs / 3);
    renewal?.unref();
    let put: PutResult;
    try {
      // A size known in advance is reserved whole: concurrent writes that cannot all fit are
      // refused before any is read, rather than all growing into the room and all failing.
      if (!held && opts.expectedBytes) reserved.held = await this.quota.reserve(this.tenant, id, opts.expectedBytes, opts.expectedBytes);
      // A blob the tenant is charged for already costs nothing again; the bytes must match it.
      put = held ? await this.inner.put(source, { ...opts, maxBytes: Math.min(opts.maxBytes ?? Infinity, held.size) }) : await this.inner.put(this.reserving(source, id, reserved), opts);
    } catch (err) {
      // Were Redis unreachable, the reservation would still expire: the put's own error is the one to report.
      await this.quota.release(this.tenant, id).catch(() => {});
      throw err;
    } finally {
      clearInterval(renewal);
    }
    // `created` is the tenant's view: whether it holds a blob it did not hold before. That
    // another tenant stored the same bytes earlier is not said (it would tell whether anyone
    // has a given file).
    const hadIt = held !== null || (await this.quota.references(this.tenant, put.digest));
    await this.quota.settle(this.tenant, id, put);
    return { ...put, created: !hadIt };
  }

  /**
   * Charges blobs already stored to the tenant (what a cache hit hands it), each once, all or
   * none: QuotaExceededError when they do not fit, BlobNotFoundError when one is gone.
   */
  async chargeStored(digests: Iterable<Digest>): Promise<void> {
    const blobs: BlobInfo[] = [];
    for (const digest of new Set(digests)) {
      const info = await this.inner.stat(digest);
      if (!info) throw new BlobNotFoundError(digest);
      blobs.push(info);
    }
    await this.quota.chargeStored(this.tenant, blobs);
  }

  private async heldCopy(digest: Digest | undefined): Promise<BlobInfo | null> {
    if (!digest || !(await this.quota.references(this.tenant, digest))) return null;
    return this.inner.stat(digest);
  }

  /** `source`, each chunk passed on only once its bytes are reserved (`reserved.held` so far). */
  private reserving(source: Readable, id: string, reserved: { held: number }): Readable {
    const { quota, tenant } = this;
    const ahead = quota.settings.chunkBytes;
    let arrived = 0;
    const meter = new Transform({
      transform(chunk: Buffer, _encoding, done: TransformCallback) {
        arrived += chunk.length;
        if (arrived <= reserved.held) return done(null, chunk);
        // Ahead as much again as arrived, at most a chunk: a small blob holds little of the room.
        quota.reserve(tenant, id, arrived, arrived + Math.min(arrived, ahead)).then(
          (now) => {
            reserved.held = now;
            done(null, chunk);
          },
          (err: unknown) => done(err as Error),
        );
      },
    });
    // Either side failing ends both (an over-quota meter stops the source; a dead source the put).
    return pipeline(source, meter, () => {});
  }
}
