import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import { BUILD_ID_PATTERN, newBuildId } from '../builds/build-id.ts';
import type { BuildLogs } from '../builds/build-log.ts';
import type { BuildRecord } from '../builds/build-record.ts';
import type { BuildRepository } from '../builds/build-repository.ts';
import { publishCancel } from '../builds/cancellation.ts';
import { nameRuleViolation, tagRuleViolation } from '../builds/reference.ts';
import { BudgetExceededError } from '../budget.ts';
import { LayerInputError } from '../image/layer-entry.ts';
import { imageOutput } from '../builds/build-archive.ts';
import { buildCacheKey, findCachedBuild, type BuildCacheHit } from '../builds/build-cache.ts';
import type { ResultCache } from '../builds/result-cache.ts';
import { vmCapViolations, type VmCaps } from '../builds/vm-caps.ts';
import { blobReferences, resolveSpec, type BuildSpec } from '../builds/spec.ts';
import { planBuild } from '../builds/build-plan.ts';
import type { LayerBudgets } from '../image/build-usage.ts';
import { planEtag, planSize } from '../image/sinks/byte-plan.ts';
import { compressionRefusal, defaultCompression, type OutputCompression, type OutputFormat } from '../image/sinks/output-format.ts';
import { loadImage } from '../image/stored-image.ts';
import { Problem, type FieldError } from '../problem.ts';
import { enqueueBuild, jobIdOf, type BuildQueues } from '../queue/build-queue.ts';
import { whyNoWorkerServes } from '../queue/worker-registry.ts';
import type { ApiMetrics } from '../metrics/api-metrics.ts';
import type { BlobStore } from '../store/blob-store.ts';
import type { BlobOwners } from '../auth/blob-owners.ts';
import type { TenantQuota } from '../auth/tenant-quota.ts';
import { ChargedStore } from '../store/charged-store.ts';
import { parseReference, registryFor, RegistryError, type Registries } from '../registry/registries.ts';
import { findTenantBuild, tenantOf } from './find-build.ts';
import { fingerprintOf, type Idempotency } from './idempotency.ts';
import { operationSchema } from './openapi.ts';
import { fieldProblem, validationProblem } from './problems.ts';
import { sendPlan } from './send-blob.ts';

export interface BuildsOptions {
  redis: Redis;
  store: BlobStore;
  builds: BuildRepository;
  logs: BuildLogs;
  queue: BuildQueues;
  idempotency: Idempotency;
  buildAttempts: number;
  owners: BlobOwners;
  /** What a download stores (compressed pieces made on first need) is charged to its tenant. */
  quota: TenantQuota;
  /** Builds one tenant may have waiting; over it, 429. */
  tenantMaxQueued: number;
  registries: Registries;
  /** The build cache; absent: every build is built. */
  cache?: ResultCache;
  /** Part of the cache key: the same spec may give another layer where devices are allowed. */
  allowDevices: boolean;
  /** What flattening an image for `format=rootfs` may hold; over it, 422. */
  layerBudgets?: LayerBudgets;
  metrics?: Pick<ApiMetrics, 'buildsSubmitted' | 'cacheLookups'>;
  /** The operator's caps on `diskSize`, `memorySize` and `timeout`; over them, 400. */
  vmCaps: VmCaps;
}

/** `/v1/builds`: submit (validate, record, enqueue; never build here), poll, download. */
export const buildsRoutes: FastifyPluginAsync<BuildsOptions> = async (app, opts) => {
  const { store, builds, queue, quota, layerBudgets } = opts;

  app.post<{ Body: BuildSpec; Querystring: { noCache?: 'true' | 'false'; dryRun?: 'true' | 'false' } }>(
    '/v1/builds',
    { schema: operationSchema('createBuild'), attachValidation: true },
    async (request, reply) => {
      const spec = request.body;
      if (request.validationError) {
        const { validation, validationContext } = request.validationError;
        if (validationContext === 'querystring') throw validationProblem(validation, validationContext, 'query');
        throw validationProblem(validation, validationContext, 'build spec', spec, (pointer) => explainReference(spec, pointer));
      }
      const base = await checkSubmission(spec, request.tenant);
      const noCache = request.query.noCache === 'true';
      if (request.query.dryRun === 'true') {
        // Resolved and planned like a submission, but nothing is recorded, queued or built.
        const plan = await planBuild(resolveSpec(spec, new Date()), { store, cache: opts.cache, tenant: request.tenant, allowDevices: opts.allowDevices, base, noCache });
        return reply.status(200).send(plan);
      }

      return opts.idempotency.run(request, reply, `${request.tenant}:builds`, fingerprintOf({ spec, noCache }), async () => {
        const now = new Date();
        const resolved = resolveSpec(spec, now);
        const cacheKey = opts.cache ? (buildCacheKey(resolved, { tenant: request.tenant, base, allowDevices: opts.allowDevices }) ?? undefined) : undefined;
        let hit: BuildCacheHit | null = null;
        if (opts.cache && cacheKey && !noCache) {
          hit = await findCachedBuild(opts.cache, store, cacheKey);
          opts.metrics?.cacheLookups.inc({ cache: 'build', result: hit ? 'hit' : 'miss' });
        }
        const id = newBuildId();
        // A cache hit never has a job.
        request.log = request.log.child({ buildId: id, jobId: hit ? null : jobIdOf(id) });
        // Accepted even when no live worker can run it (one may join): the answer, the record
        // and the log say so.
        const waiting = hit ? null : await whyNoWorkerServes(opts.redis, resolved);
        const record: BuildRecord = hit
          ? { id, tenant: request.tenant, status: 'succeeded', spec: resolved, createdAt: now.toISOString(), startedAt: now.toISOString(), finishedAt: now.toISOString(), cached: true, cachedFrom: hit.buildId, result: hit.result }
          : { id, tenant: request.tenant, status: 'queued', spec: resolved, createdAt: now.toISOString(), ...(waiting ? { waiting } : {}) };
        // The hit's result now counts against this tenant's storage like its own uploads (once
        // each; over its quota: 413, and no build is recorded).
        if (hit) await quota.chargeStored(request.tenant, hit.blobs);
        // Its log line first: a build's final state (a hit's first) is its last event.
        if (hit) await opts.logs.append(id, `baler: identical to build ${hit.buildId}; its result is reused (submit with ?noCache=true to build again)\n`);
        // A cache hit is finished at once: it takes no place in the queue, so no queue quota.
        const queued = await builds.create(record, hit ? undefined : opts.tenantMaxQueued);
        if (queued === null) {
          void reply.header('Retry-After', '30');
          throw new Problem(429, `${opts.tenantMaxQueued} builds of yours are already queued (the limit); retry when some have started`);
        }
        opts.metrics?.buildsSubmitted.inc({ cached: hit ? 'true' : 'false' });
        if (hit) {
          request.log.info({ status: 'succeeded', cachedFrom: hit.buildId }, 'build taken from the cache');
          return { status: 201, location: `/v1/builds/${id}`, body: { id, status: record.status, cached: true, cachedFrom: hit.buildId } };
        }
        // Written before it is queued: a worker clears the log when it starts.
        if (waiting) await opts.logs.append(id, `baler: ${waiting}\n`);
        await enqueueBuild(queue, { buildId: id, spec: resolved, tenant: request.tenant, cacheKey, noCache: noCache || undefined }, opts.buildAttempts, queued);
        request.log.info({ status: 'queued', waiting }, 'build queued');
        return { status: 202, location: `/v1/builds/${id}`, body: { id, status: record.status, ...(waiting ? { waiting } : {}) } };
      });
    },
  );

  /**
   * What the schema cannot say: option combinations, dates, and that what it names exists.
   * Resolves with the base build, when the spec names one.
   */
  const checkSubmission = async (spec: BuildSpec, tenant: string): Promise<BuildRecord | undefined> => {
    const overCap = vmCapViolations(spec, opts.vmCaps);
    if (overCap.length > 0) throw fieldProblem(400, 'invalid build spec', overCap);
    const refusal = spec.compression && compressionRefusal(spec.format ?? 'docker-archive', spec.compression);
    if (refusal) throw fieldProblem(400, 'invalid build spec', [{ pointer: '/compression', message: refusal }]);
    const created = spec.created;
    if (created !== undefined && created !== 'now' && Number.isNaN(Date.parse(created))) {
      throw fieldProblem(400, 'invalid build spec', [{ pointer: '/created', message: `'${created}' is not a valid date` }]);
    }
    if (spec.fromImage && 'ref' in spec.fromImage) {
      // A bad reference or a registry the operator does not allow is known before queueing.
      try {
        registryFor(opts.registries, parseReference(spec.fromImage.ref).host);
      } catch (err) {
        if (err instanceof RegistryError) throw fieldProblem(422, 'unusable base image', [{ pointer: '/fromImage/ref', message: err.message }], err);
        throw err;
      }
    }
    let base: BuildRecord | undefined;
    if (spec.fromImage && 'build' in spec.fromImage) {
      const id = spec.fromImage.build;
      const found = BUILD_ID_PATTERN.test(id) ? await builds.get(id) : null;
      if (!found || tenantOf(found) !== tenant) throw fieldProblem(422, 'unusable base image', [{ pointer: '/fromImage/build', message: `base build ${id} not found` }]);
      if (found.status !== 'succeeded') {
        throw fieldProblem(422, 'unusable base image', [{ pointer: '/fromImage/build', message: `base build ${id} is ${found.status}; a base must have succeeded` }]);
      }
      base = found;
    }
    const missing: FieldError[] = [];
    for (const { digest, pointer } of blobReferences(spec)) {
      if (!(await opts.owners.owns(tenant, digest)) || !(await store.stat(digest))) missing.push({ pointer, message: `blob ${digest} not found (upload it to /v1/blobs first)` });
    }
    if (missing.length > 0) throw fieldProblem(422, 'blobs not found', missing);
    return base;
  };

  const findBuild = (request: FastifyRequest<{ Params: { id: string } }>) => findTenantBuild(builds, request);

  app.get<{ Params: { id: string } }>('/v1/builds/:id', { schema: operationSchema('getBuild') }, async (request) => findBuild(request));

  /** This tenant's newest builds, newest first, as summaries (for a dashboard or a CLI). */
  app.get<{ Querystring: { limit?: string } }>(
    '/v1/builds',
    { schema: operationSchema('listBuilds'), attachValidation: true },
    async (request) => {
      const limit = Number(request.query.limit ?? DEFAULT_LIST_LIMIT);
      if (request.validationError || limit < 1 || limit > MAX_LIST_LIMIT) throw new Problem(400, `limit must be a whole number from 1 to ${MAX_LIST_LIMIT}`);
      const records = await builds.recent(request.tenant, limit);
      return { builds: records.map(summaryOf) };
    },
  );

  /**
   * Cancel: a queued build never starts, a running one is stopped by its worker (its VM
   * killed) within seconds; either way the record says `cancelled` at once. 409 once final.
   */
  const cancel = async (request: FastifyRequest<{ Params: { id: string } }>) => {
    const record = await findBuild(request);
    const cancelled = await builds.transition(record.id, ['queued', 'running'], { status: 'cancelled', finishedAt: new Date().toISOString() });
    if (!cancelled) {
      const now = await builds.get(record.id);
      throw new Problem(409, `build ${record.id} is ${now?.status ?? record.status}; only queued or running builds can be cancelled`);
    }
    await publishCancel(opts.redis, record.id);
    // A job no worker has taken yet can go at once; an active one is stopped by its worker.
    await queue.remove(record.id, record.spec);
    const now = await builds.get(record.id);
    const finishedMs = Date.parse(now?.finishedAt ?? new Date().toISOString());
    // How long it was in the state it left (a running build's startedAt is set with its state).
    const durations = record.status === 'running' && record.startedAt ? { runningMs: finishedMs - Date.parse(record.startedAt) } : { queuedMs: finishedMs - Date.parse(record.createdAt) };
    request.log.info({ status: 'cancelled', was: record.status, ...durations }, 'build cancelled');
    return now;
  };
  app.delete<{ Params: { id: string } }>('/v1/builds/:id', { schema: operationSchema('cancelBuild') }, cancel);
  app.post<{ Params: { id: string } }>('/v1/builds/:id/cancel', { schema: operationSchema('cancelBuildByPost') }, cancel);

  app.get<{ Params: { id: string } }>('/v1/builds/:id/logs', { schema: operationSchema('getBuildLogs') }, async (request, reply) => {
    const record = await findBuild(request);
    return reply.type('text/plain; charset=utf-8').send(await opts.logs.read(record.id));
  });

  type ImageRequest = FastifyRequest<{ Params: { id: string }; Querystring: { format?: OutputFormat; compression?: OutputCompression } }>;
  /**
   * The image archive: the build's own format, or another one on request (`?format=`,
   * `?compression=`), assembled from the stored blobs as it is sent (nothing per build is
   * stored). Planned archives have an exact length, ETag and Range; a gzip'd rootfs is
   * compressed as it streams, without them.
   */
  const image = async (request: ImageRequest, reply: FastifyReply) => {
    const record = await findBuild(request);
    if (record.status !== 'succeeded' || !record.result) {
      throw new Problem(409, `build ${record.id} is ${record.status}; the image is available once it has succeeded`);
    }
    const result = record.result;
    const format = request.query.format ?? result.archive.format;
    const compression = request.query.compression ?? (format === result.archive.format ? result.archive.compression : defaultCompression(format));
    const refusal = compressionRefusal(format, compression);
    if (refusal) throw new Problem(400, `compression ${refusal}`);
    const charged = new ChargedStore(store, quota, request.tenant);
    const out = await imageOutput(await loadImage(store, result), record.spec, format, compression, charged, layerBudgets).catch(
      (err: unknown) => {
        // A rootfs flattens the layers here, under the budgets a build has; a base layer's own
        // tar (imported, never read by a build without a VM step) may be refused only now.
        if (err instanceof BudgetExceededError || err instanceof LayerInputError) throw new Problem(422, err.message, { cause: err });
        throw err;
      },
    );
    const opts = { contentType: out.mediaType, filename: out.filename };
    if (out.plan) {
      const own = format === result.archive.format && compression === result.archive.compression && planSize(out.plan) === result.archive.size;
      return sendPlan(request, reply, store, out.plan, own ? result.archive.digest : planEtag(out.plan), opts);
    }
    void reply.header('Content-Type', opts.contentType).header('Content-Disposition', `attachment; filename="${opts.filename}"`);
    if (request.method === 'HEAD') return reply.send();
    return reply.send(out.stream);
  };
  app.get('/v1/builds/:id/image', { exposeHeadRoute: false, schema: operationSchema('downloadImage') }, image);
  app.head('/v1/builds/:id/image', { schema: operationSchema('headImage') }, image);
};

const DEFAULT_LIST_LIMIT = 20;
const MAX_LIST_LIMIT = 100;

/** What a list shows of a build (BuildSummary in openapi.yaml): no spec, no result. */
function summaryOf(record: BuildRecord) {
  return {
    id: record.id,
    status: record.status,
    name: record.spec.name,
    tag: record.spec.tag,
    createdAt: record.createdAt,
    startedAt: record.startedAt,
    finishedAt: record.finishedAt,
    cached: record.cached,
    cachedFrom: record.cachedFrom,
    error: record.error?.detail,
  };
}

/** The reference grammar is one long pattern in the schema; say which rule a name broke. */
function explainReference(spec: unknown, pointer: string): string | null {
  const { name, tag } = (spec ?? {}) as { name?: unknown; tag?: unknown };
  if (pointer === '/name' && typeof name === 'string') return nameRuleViolation(name);
  if (pointer === '/tag' && typeof tag === 'string') return tagRuleViolation(tag);
  return null;
}
