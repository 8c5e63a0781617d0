import type { Redis } from 'ioredis';
import { attestCachedResult, type AttestDeps } from '../attest/attest-build.ts';
import type { TenantQuota } from '../auth/tenant-quota.ts';
import { buildCacheKey, findCachedBuild, type BuildCacheHit } from '../builds/build-cache.ts';
import { newBuildId } from '../builds/build-id.ts';
import type { BuildLogs } from '../builds/build-log.ts';
import { planBuild } from '../builds/build-plan.ts';
import type { BuildRecord } from '../builds/build-record.ts';
import type { ResultCache } from '../builds/result-cache.ts';
import { resolveSpec, type BuildSpec } from '../builds/spec.ts';
import type { ApiMetrics } from '../metrics/api-metrics.ts';
import { Problem } from '../problem.ts';
import { ChargedStore } from '../store/charged-store.ts';
import { enqueueBuild, jobIdOf, type BuildQueues } from '../queue/build-queue.ts';
import { whyNoWorkerServes } from '../queue/worker-registry.ts';
import { checkBuildSpec, type BuildCheckDeps } from './build-checks.ts';
import { fingerprintOf, type Idempotency, type SubmissionResponse } from './idempotency.ts';
import type { Submitter } from './submitter.ts';

export interface BuildSubmissionDeps extends BuildCheckDeps {
  redis: Redis;
  logs: BuildLogs;
  queue: BuildQueues;
  idempotency: Idempotency;
  buildAttempts: number;
  /** A cache hit's result is charged to the tenant that submitted it. */
  quota: TenantQuota;
  /** Builds one tenant may have waiting; over it, 429. */
  tenantMaxQueued: number;
  /** The build cache; absent: every build is built. */
  cache?: ResultCache;
  /** Part of the cache key: the same spec may give another layer where devices are allowed. */
  allowDevices: boolean;
  metrics?: Pick<ApiMetrics, 'buildsSubmitted' | 'cacheLookups'>;
  /** How a build-cache hit gets its own provenance (naming the build it reuses); absent: it has the original's. */
  attest?: Omit<AttestDeps, 'store' | 'signal' | 'packageBudgets'>;
}

export interface SubmitOptions {
  /** Build again even when the cache holds an identical build. */
  noCache: boolean;
  /** Its retry gets the first answer again (see Idempotency). */
  idempotencyKey?: string;
  /**
   * A verification build of this build (verification-submission.ts): built with no cache, not
   * recorded in the build cache (its result is compared, never reused), `verifies` on its record.
   */
  verifies?: string;
}

/**
 * Build submission: a spec the schema accepted is checked (checkBuildSpec), then either
 * planned without building (a dry run), or recorded and queued (or answered from the build
 * cache) once per idempotency key, within the tenant's queue quota. Nothing is built here.
 */
export class BuildSubmission {
  constructor(private readonly deps: BuildSubmissionDeps) {}

  /** A dry run: resolved and planned like a submission, but nothing is recorded, queued or built. */
  async plan(spec: BuildSpec, submitter: Submitter, noCache: boolean) {
    const base = await checkBuildSpec(spec, submitter.tenant, this.deps);
    const { store, cache, allowDevices } = this.deps;
    return planBuild(resolveSpec(spec, new Date()), { store, cache, tenant: submitter.tenant, allowDevices, base, noCache });
  }

  async submit(spec: BuildSpec, submitter: Submitter, opts: SubmitOptions): Promise<{ response: SubmissionResponse; replayed: boolean }> {
    const base = await checkBuildSpec(spec, submitter.tenant, this.deps);
    const { verifies } = opts;
    const noCache = opts.noCache || verifies !== undefined;
    const fingerprint = fingerprintOf(verifies ? { spec, noCache, verifies } : { spec, noCache });
    return this.deps.idempotency.run(opts.idempotencyKey, `${submitter.tenant}:builds`, fingerprint, () => this.record(spec, submitter, noCache, base, verifies));
  }

  /** The hit's result with a provenance of this build (attestCachedResult); the original's when that cannot be made. */
  private async attestHit(hit: BuildCacheHit, id: string, spec: BuildRecord['spec'], now: Date, submitter: Submitter): Promise<BuildRecord['result']> {
    const { attest, store, quota } = this.deps;
    if (!attest) return hit.result;
    const at = now.toISOString();
    try {
      return await attestCachedResult(hit.result, { buildId: id, spec, startedOn: at, finishedOn: at }, hit.buildId, { ...attest, store: new ChargedStore(store, quota, submitter.tenant) });
    } catch (err) {
      submitter.log.warn({ err, cachedFrom: hit.buildId }, "could not make the cached build's provenance; it has the original's");
      return hit.result;
    }
  }

  private async record(spec: BuildSpec, submitter: Submitter, noCache: boolean, base: BuildRecord | undefined, verifies?: string): Promise<SubmissionResponse> {
    const { deps } = this;
    const tenant = submitter.tenant;
    const now = new Date();
    const resolved = resolveSpec(spec, now);
    const cacheKey = deps.cache && !verifies ? (buildCacheKey(resolved, { tenant, base, allowDevices: deps.allowDevices }) ?? undefined) : undefined;
    let hit: BuildCacheHit | null = null;
    if (deps.cache && cacheKey && !noCache) {
      hit = await findCachedBuild(deps.cache, deps.store, cacheKey);
      deps.metrics?.cacheLookups.inc({ cache: 'build', result: hit ? 'hit' : 'miss' });
    }
    const id = newBuildId();
    // A cache hit never has a job.
    submitter.log = submitter.log.child({ buildId: id, jobId: hit ? null : jobIdOf(id) });
    // Accepted even when no live worker can run it (one may join): the answer, the record
    // and the log say so.
    const waiting = hit ? null : await whyNoWorkerServes(deps.redis, resolved);
    const record: BuildRecord = hit
      ? {
          id,
          tenant,
          status: 'succeeded',
          spec: resolved,
          createdAt: now.toISOString(),
          startedAt: now.toISOString(),
          finishedAt: now.toISOString(),
          cached: true,
          cachedFrom: hit.buildId,
          result: await this.attestHit(hit, id, resolved, now, submitter),
        }
      : { id, tenant, status: 'queued', spec: resolved, createdAt: now.toISOString(), ...(waiting ? { waiting } : {}), ...(verifies ? { verifies } : {}) };
    // The hit's result now counts against this tenant's storage like its own uploads (once
    // each; over its quota: 413, and no build is recorded).
    if (hit) await deps.quota.chargeStored(tenant, hit.blobs);
    // Its log line first: a build's final state (a hit's first) is its last event.
    if (hit) await deps.logs.append(id, `baler: identical to build ${hit.buildId}; its result is reused (submit with ?noCache=true to build again)\n`);
    // A cache hit is finished at once: it takes no place in the queue, so no queue quota.
    const queued = await deps.builds.create(record, hit ? undefined : deps.tenantMaxQueued);
    if (queued === null) {
      throw new Problem(429, `${deps.tenantMaxQueued} builds of yours are already queued (the limit); retry when some have started`, { headers: { 'Retry-After': '30' } });
    }
    deps.metrics?.buildsSubmitted.inc({ cached: hit ? 'true' : 'false' });
    if (hit) {
      submitter.log.info({ status: 'succeeded', cachedFrom: hit.buildId }, 'build taken from the cache');
      return { status: 201, location: `/v1/builds/${id}`, body: { id, status: record.status, cached: true, cachedFrom: hit.buildId } };
    }
    // Written before it is queued: a worker clears the log when it starts.
    if (waiting) await deps.logs.append(id, `baler: ${waiting}\n`);
    await enqueueBuild(deps.queue, { buildId: id, spec: resolved, tenant, cacheKey, noCache: noCache || undefined, verifies }, deps.buildAttempts, queued);
    submitter.log.info({ status: 'queued', waiting }, 'build queued');
    return { status: 202, location: `/v1/builds/${id}`, body: { id, status: record.status, ...(waiting ? { waiting } : {}) } };
  }
}
