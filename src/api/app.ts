import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { BlobOwners } from '../auth/blob-owners.ts';
import { quotaSettings, TenantQuota } from '../auth/tenant-quota.ts';
import type { TokenFile } from '../auth/token-file.ts';
import type { BuildLogs } from '../builds/build-log.ts';
import type { BuildRepository } from '../builds/build-repository.ts';
import type { BuildEventStream } from '../events/event-stream.ts';
import type { Config } from '../config.ts';
import type { Logger } from '../log.ts';
import { jobIdOf, type BuildQueues } from '../queue/build-queue.ts';
import { BUILD_ID_PATTERN } from '../builds/build-id.ts';
import { createApiMetrics } from '../metrics/api-metrics.ts';
import { WriteCountingStore } from '../metrics/store-writes.ts';
import { registerMetrics } from './metrics.ts';
import type { BlobStore } from '../store/blob-store.ts';
import type { PushJobData } from '../queue/push-queue.ts';
import type { Registries } from '../registry/registries.ts';
import type { SigningKey } from '../attest/signing/signing-key.ts';
import { registerAuth } from './auth.ts';
import { hostname } from 'node:os';
import { readFileSync } from 'node:fs';
import { mergesRoutes } from './merges.ts';
import { workersRoutes } from './workers.ts';
import { pushesRoutes } from './pushes.ts';
import { verificationRoutes } from './verification.ts';
import { blobsRoutes } from './blobs.ts';
import { attestationsRoutes } from './attestations.ts';
import { buildsRoutes } from './builds.ts';
import { dashboardRoutes } from './dashboard.ts';
import { eventsRoutes } from './events.ts';
import { RedisResultCache } from '../builds/result-cache.ts';
import { docsRoutes } from './docs.ts';
import { healthRoutes } from './health.ts';
import { signingKeyRoutes } from './signing-key.ts';
import { Idempotency } from '../submission/idempotency.ts';
import { BuildSubmission } from '../submission/build-submission.ts';
import { PushSubmission } from '../submission/push-submission.ts';
import { limitJsonDepth } from './json-depth.ts';
import { registerContractLog } from './contract-log.ts';
import { loadSchemas } from './openapi.ts';
import { addMethodNotAllowedRoutes, registerProblemHandlers } from './problems.ts';

export interface ApiDeps {
  config: Pick<
    Config,
    | 'maxJsonBytes'
    | 'maxUploadBytes'
    | 'maxDiskSizeMiB'
    | 'maxMemorySizeMiB'
    | 'maxVmTimeoutSeconds'
    | 'buildAttempts'
    | 'tenantMaxQueued'
    | 'tenantMaxStoredBytes'
    | 'quotaChunkBytes'
    | 'quotaReservationTtlSeconds'
    | 'retentionSeconds'
    | 'allowDevices'
    | 'layerBudgets'
    | 'contractLog'
    | 'storeScanSeconds'
    | 'eventsHeartbeatMs'
    | 'tenantMaxEventStreams'
    | 'builderId'
  >;
  logger: Logger;
  redis: Redis;
  store: BlobStore;
  builds: BuildRepository;
  logs: BuildLogs;
  /** Builds' live events (the same stream `builds` and `logs` write state and log events to). */
  events: BuildEventStream;
  queue: BuildQueues;
  /** Bearer tokens; null: no authentication. */
  tokens: TokenFile | null;
  pushQueue: Queue<PushJobData>;
  /** Registries the operator allows (pulls and pushes). */
  registries: Registries;
  /** BALER_SIGNING_KEY_FILE's key; null: attestations are unsigned. */
  signingKey: SigningKey | null;
}

const { version: BALER_VERSION } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

/** The HTTP API: validates, records and enqueues; it never builds. */
export async function createApi(deps: ApiDeps): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    // One line per request, written below: at info for changes and errors, at debug for reads
    // (polling clients would otherwise drown the log, and halve the API's throughput).
    disableRequestLogging: true,
    bodyLimit: deps.config.maxJsonBytes,
    ajv: {
      // Reject what the schema does not allow instead of silently fixing it up.
      customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: true, strict: false },
    },
  });
  // First, so that it sees every route and every response.
  if (deps.config.contractLog) registerContractLog(app, deps.config.contractLog);
  for (const schema of loadSchemas()) app.addSchema(schema);
  registerProblemHandlers(app);
  // Every line about a build names it and its job, from the request's first line on (so
  // before authentication, which may answer first).
  app.addHook('onRequest', async (request) => {
    const id = (request.params as { id?: unknown } | undefined)?.id;
    if (typeof id === 'string' && BUILD_ID_PATTERN.test(id) && request.routeOptions.url?.startsWith('/v1/builds/:id')) {
      request.log = request.log.child({ buildId: id, jobId: jobIdOf(id) });
    }
  });
  app.addHook('onResponse', async (request, reply) => {
    const read = request.method === 'GET' || request.method === 'HEAD';
    const level = reply.statusCode >= 500 ? 'error' : read && reply.statusCode < 400 ? 'debug' : 'info';
    request.log[level]({ method: request.method, url: request.url, statusCode: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request');
  });
  const metrics = createApiMetrics({
    builds: deps.builds,
    queues: { builds: deps.queue, pushes: deps.pushQueue },
    store: deps.store,
    storeUsageMaxAgeMs: deps.config.storeScanSeconds * 1000,
    logger: deps.logger,
  });
  // Uploads through this replica count as bytes written (baler_store_bytes walks the store itself).
  const store = new WriteCountingStore(deps.store, metrics.storeWrittenBytes);
  registerAuth(app, deps.tokens);
  registerMetrics(app, metrics);
  limitJsonDepth(app);
  const owners = new BlobOwners(deps.redis);
  const quota = new TenantQuota(deps.redis, quotaSettings(deps.config));

  const routes = new Map<string, Set<string>>();
  app.addHook('onRoute', (route) => {
    const methods = routes.get(route.url) ?? new Set<string>();
    for (const method of [route.method].flat()) methods.add(method);
    routes.set(route.url, methods);
  });

  await app.register(healthRoutes, { redis: deps.redis, store });
  const idempotency = new Idempotency(deps.redis);
  await app.register(blobsRoutes, {
    store,
    maxUploadBytes: deps.config.maxUploadBytes,
    quota,
    idempotency,
    owners,
  });
  const submission = new BuildSubmission({
    redis: deps.redis,
    store,
    builds: deps.builds,
    logs: deps.logs,
    queue: deps.queue,
    idempotency,
    owners,
    quota,
    tenantMaxQueued: deps.config.tenantMaxQueued,
    registries: deps.registries,
    buildAttempts: deps.config.buildAttempts,
    cache: new RedisResultCache(deps.redis, deps.config.retentionSeconds),
    allowDevices: deps.config.allowDevices,
    metrics,
    vmCaps: deps.config,
    // A build-cache hit gets a provenance of its own, made here (no worker runs it).
    attest: { signingKey: deps.signingKey ?? undefined, builderId: deps.config.builderId, balerVersion: BALER_VERSION, worker: `api:${hostname()}:${process.pid}` },
  });
  await app.register(buildsRoutes, {
    redis: deps.redis,
    store,
    builds: deps.builds,
    logs: deps.logs,
    queue: deps.queue,
    submission,
    quota,
    layerBudgets: deps.config.layerBudgets,
  });
  await app.register(attestationsRoutes, { store, builds: deps.builds });
  await app.register(workersRoutes, { redis: deps.redis });
  await app.register(signingKeyRoutes, { publicKeyPem: deps.signingKey?.publicKeyPem ?? null });
  await app.register(eventsRoutes, { redis: deps.redis, builds: deps.builds, events: deps.events, heartbeatMs: deps.config.eventsHeartbeatMs, tenantMaxStreams: deps.config.tenantMaxEventStreams });
  await app.register(mergesRoutes, { store, builds: deps.builds, quota });
  await app.register(pushesRoutes, { pushes: new PushSubmission({ builds: deps.builds, queue: deps.pushQueue, registries: deps.registries }) });
  await app.register(verificationRoutes, { redis: deps.redis, store, builds: deps.builds, submission });
  await app.register(dashboardRoutes, { tokens: deps.tokens !== null });
  await app.register(docsRoutes);
  addMethodNotAllowedRoutes(app, new Map([...routes].map(([url, methods]) => [url, new Set(methods)])));
  return app;
}
