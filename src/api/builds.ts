import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import type { BuildLogs } from '../builds/build-log.ts';
import type { BuildRecord } from '../builds/build-record.ts';
import type { BuildRepository } from '../builds/build-repository.ts';
import { publishCancel } from '../builds/cancellation.ts';
import { nameRuleViolation, tagRuleViolation } from '../builds/reference.ts';
import { BudgetExceededError } from '../budget.ts';
import { LayerInputError } from '../image/layer-entry.ts';
import { archivePredicates } from '../attest/archive-attestations.ts';
import type { Attested } from '../attest/image-attestations.ts';
import { imageOutput, indexOutput } from '../builds/build-archive.ts';
import type { BuildSpec } from '../builds/spec.ts';
import type { LayerBudgets } from '../image/build-usage.ts';
import { planEtag, planSize } from '../image/sinks/byte-plan.ts';
import { compressionRefusal, defaultCompression, type OutputCompression, type OutputFormat } from '../image/sinks/output-format.ts';
import { loadImage } from '../image/stored-image.ts';
import { Problem } from '../problem.ts';
import type { BuildQueues } from '../queue/build-queue.ts';
import type { BlobStore } from '../store/blob-store.ts';
import type { TenantQuota } from '../auth/tenant-quota.ts';
import { ChargedStore } from '../store/charged-store.ts';
import type { BuildSubmission } from '../submission/build-submission.ts';
import { requireTenantBuild } from '../submission/tenant-build.ts';
import { downloadTarget } from './image-platform.ts';
import { operationSchema } from './openapi.ts';
import { validationProblem } from './problems.ts';
import { sendPlan } from './send-blob.ts';
import { idempotencyKeyOf, sendSubmissionResponse } from './submission-reply.ts';

export interface BuildsOptions {
  redis: Redis;
  store: BlobStore;
  builds: BuildRepository;
  logs: BuildLogs;
  queue: BuildQueues;
  submission: BuildSubmission;
  /** What a download stores (compressed pieces made on first need) is charged to its tenant. */
  quota: TenantQuota;
  /** What flattening an image for `format=rootfs` may hold; over it, 422. */
  layerBudgets?: LayerBudgets;
}

/** `/v1/builds`: submit (through the build submission; never build here), poll, download. */
export const buildsRoutes: FastifyPluginAsync<BuildsOptions> = async (app, opts) => {
  const { store, builds, queue, quota, layerBudgets, submission } = opts;

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
      const noCache = request.query.noCache === 'true';
      if (request.query.dryRun === 'true') return reply.status(200).send(await submission.plan(spec, request, noCache));
      return sendSubmissionResponse(reply, await submission.submit(spec, request, { noCache, idempotencyKey: idempotencyKeyOf(request) }));
    },
  );

  const findBuild = (request: FastifyRequest<{ Params: { id: string } }>) => requireTenantBuild(builds, request.tenant, request.params.id);

  app.get<{ Params: { id: string } }>('/v1/builds/:id', { schema: operationSchema('getBuild') }, async (request) => findBuild(request));

  /** This tenant's newest builds, newest first, as summaries (for a dashboard or a CLI). */
  app.get<{ Querystring: { limit?: string } }>('/v1/builds', { schema: operationSchema('listBuilds'), attachValidation: true }, async (request) => {
    const limit = Number(request.query.limit ?? DEFAULT_LIST_LIMIT);
    if (request.validationError || limit < 1 || limit > MAX_LIST_LIMIT) throw new Problem(400, `limit must be a whole number from 1 to ${MAX_LIST_LIMIT}`);
    const records = await builds.recent(request.tenant, limit);
    return { builds: records.map(summaryOf) };
  });

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

  type ImageRequest = FastifyRequest<{ Params: { id: string }; Querystring: { format?: OutputFormat; compression?: OutputCompression; platform?: string } }>;
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
    const target = downloadTarget({ ...record, result }, format, request.query.platform);
    // What the build described of this image (or index): a download of that format and compression is it.
    const archive = 'index' in target ? result.archive : target.archive;
    const compression = request.query.compression ?? (format === archive.format ? archive.compression : defaultCompression(format));
    const refusal = compressionRefusal(format, compression);
    if (refusal) throw new Problem(400, `compression ${refusal}`);
    const charged = new ChargedStore(store, quota, request.tenant);
    // An index archive holds its images' SBOMs, as the build described it (attested-archives.ts).
    const predicatesOf = (image: Attested) => (image.attestations ? archivePredicates(image.attestations, store) : undefined);
    const output =
      'index' in target
        ? Promise.all([Promise.all(target.index.platforms.map((p) => loadImage(store, p))), Promise.all(target.index.platforms.map(predicatesOf))]).then(([images, attestations]) =>
            indexOutput(images, record.spec, compression, charged, attestations),
          )
        : loadImage(store, target.image).then((image) => imageOutput(image, record.spec, format, compression, charged, layerBudgets));
    const out = await output.catch((err: unknown) => {
      // A rootfs flattens the layers here, under the budgets a build has; a base layer's own
      // tar (imported, never read by a build without a VM step) may be refused only now.
      if (err instanceof BudgetExceededError || err instanceof LayerInputError) throw new Problem(422, err.message, { cause: err });
      throw err;
    });
    const opts = { contentType: out.mediaType, filename: out.filename };
    if (out.plan) {
      const own = format === archive.format && compression === archive.compression && planSize(out.plan) === archive.size;
      return sendPlan(request, reply, store, out.plan, own ? archive.digest : planEtag(out.plan), opts);
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
    reproducible: record.reproducible,
  };
}

/** The reference grammar is one long pattern in the schema; say which rule a name broke. */
function explainReference(spec: unknown, pointer: string): string | null {
  const { name, tag } = (spec ?? {}) as { name?: unknown; tag?: unknown };
  if (pointer === '/name' && typeof name === 'string') return nameRuleViolation(name);
  if (pointer === '/tag' && typeof tag === 'string') return tagRuleViolation(tag);
  return null;
}
