import type { Redis } from 'ioredis';
import type { Digest } from '../digest.ts';
import type { Logger } from '../log.ts';
import { STALE_INGEST_MS, type BlobStore } from '../store/blob-store.ts';
import type { BuildRecord } from './build-record.ts';
import type { BuildRepository } from './build-repository.ts';
import { blobsOfResult } from './build-result.ts';
import { referencedBlobs } from './spec.ts';

export interface RetentionPolicy {
  /** Finished builds (record, log, archive) are kept this long. */
  retentionMs: number;
  /**
   * A blob no build references is kept this long after it was last written, so that an upload
   * whose build has not been submitted yet, or the intermediates of a running build, survive.
   */
  graceMs: number;
  /** Told of every blob deleted (e.g. to take it off its uploaders' storage use). */
  onDeleted?: (digest: Digest, size: number) => Promise<void>;
}

export interface CollectionReport {
  expiredBuilds: number;
  deletedBlobs: number;
  freedBytes: number;
  keptBlobs: number;
  /** Leftovers of uploads whose writer died, removed from the store's ingest area. */
  sweptIngest: number;
}

/** Every blob a build needs: what its spec names, everything its result is made of, its verification's statement. */
function blobsOf(record: BuildRecord): Digest[] {
  const verification = record.verification?.statement ? [record.verification.statement] : [];
  return [...referencedBlobs(record.spec), ...(record.result ? blobsOfResult(record.result) : []), ...verification];
}

/**
 * Retention and garbage collection: finished builds older than the retention period are
 * forgotten, then every blob no remaining build needs, and not written within the grace
 * period, is deleted (mark, then sweep). Builds started meanwhile are safe: what they read was
 * either marked or written within the grace period.
 */
export async function collectGarbage(builds: BuildRepository, store: BlobStore, policy: RetentionPolicy, now = Date.now()): Promise<CollectionReport> {
  const expired = await builds.finishedBefore(now - policy.retentionMs);
  for (const id of expired) await builds.remove(id);

  const live = new Set<Digest>();
  for await (const record of builds.all()) for (const digest of blobsOf(record)) live.add(digest);

  const report: CollectionReport = { expiredBuilds: expired.length, deletedBlobs: 0, freedBytes: 0, keptBlobs: 0, sweptIngest: 0 };
  for await (const blob of store.list()) {
    if (live.has(blob.digest) || now - blob.modifiedMs < policy.graceMs) {
      report.keptBlobs++;
      continue;
    }
    await store.delete(blob.digest);
    await policy.onDeleted?.(blob.digest, blob.size);
    report.deletedBlobs++;
    report.freedBytes += blob.size;
  }
  // Long-lived processes start rarely: their sweep at start is not enough.
  report.sweptIngest = await store.sweepIngest(STALE_INGEST_MS);
  return report;
}

const LOCK_KEY = 'baler:gc:lock';

/**
 * Run collection every `intervalMs` from this worker, but only one worker at a time across
 * all hosts (a Redis lock that expires, so a dead collector does not block the others).
 */
export function scheduleGarbageCollection(redis: Redis, builds: BuildRepository, store: BlobStore, policy: RetentionPolicy, intervalMs: number, logger: Logger): () => void {
  const run = async () => {
    const owner = `${process.pid}-${Date.now()}`;
    if ((await redis.set(LOCK_KEY, owner, 'PX', Math.max(intervalMs, 60_000), 'NX')) !== 'OK') return;
    const started = Date.now();
    try {
      const report = await collectGarbage(builds, store, policy);
      logger.info({ ...report, durationMs: Date.now() - started }, 'garbage collected');
    } catch (err) {
      logger.error({ err }, 'garbage collection failed');
    } finally {
      if ((await redis.get(LOCK_KEY)) === owner) await redis.del(LOCK_KEY);
    }
  };
  const timer = setInterval(() => void run(), intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
