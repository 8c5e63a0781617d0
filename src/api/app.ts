import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { BlobOwners } from '../auth/blob-owners.ts';
import type { TokenFile } from '../auth/token-file.ts';
import type { BuildLogs } from '../builds/build-log.ts';
import type { BuildRepository } from '../builds/build-repository.ts';
import type { BuildEventStream } from '../events/event-stream.ts';
import type { Config } from '../config.ts';
import type { Logger } from '../log.ts';
import type { BuildJobData } from '../queue/build-queue.ts';
import type { BlobStore } from '../store/blob-store.ts';
import type { PushJobData } from '../queue/push-queue.ts';
import type { Registries } from '../registry/registries.ts';
import { registerAuth } from './auth.ts';
import { mergesRoutes } from './merges.ts';
import { pushesRoutes } from './pushes.ts';
import { blobsRoutes } from './blobs.ts';
import { buildsRoutes } from './builds.ts';
import { eventsRoutes } from './events.ts';
import { RedisResultCache } from '../builds/result-cache.ts';
import { healthRoutes } from './health.ts';
import { Idempotency } from './idempotency.ts';
import { limitJsonDepth } from './json-depth.ts';
import { loadSchemas } from './openapi.ts';
import { addMethodNotAllowedRoutes, registerProblemHandlers } from './problems.ts';

export interface ApiDeps {
  config: Pick<Config, 'maxJsonBytes' | 'maxUploadBytes' | 'buildAttempts' | 'tenantMaxQueued' | 'tenantMaxStoredBytes' | 'retentionSeconds' | 'allowDevices'>;
  logger: Logger;
  redis: Redis;
  store: BlobStore;
  builds: BuildRepository;
  logs: BuildLogs;
  /** Builds' live events (the same stream `builds` and `logs` write state and log events to). */
  events: BuildEventStream;
  queue: Queue<BuildJobData>;
  /** Bearer tokens; null: no authentication. */
  tokens: TokenFile | null;
  pushQueue: Queue<PushJobData>;
  /** Registries the operator allows (pulls and pushes). */
  registries: Registries;
}

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
  for (const schema of loadSchemas()) app.addSchema(schema);
  registerProblemHandlers(app);
  app.addHook('onResponse', async (request, reply) => {
    const read = request.method === 'GET' || request.method === 'HEAD';
    const level = reply.statusCode >= 500 ? 'error' : read && reply.statusCode < 400 ? 'debug' : 'info';
    request.log[level]({ method: request.method, url: request.url, statusCode: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request');
  });
  registerAuth(app, deps.tokens);
  limitJsonDepth(app);
  const owners = new BlobOwners(deps.redis);

  const routes = new Map<string, Set<string>>();
  app.addHook('onRoute', (route) => {
    const methods = routes.get(route.url) ?? new Set<string>();
    for (const method of [route.method].flat()) methods.add(method);
    routes.set(route.url, methods);
  });

  await app.register(healthRoutes, { redis: deps.redis, store: deps.store });
  const idempotency = new Idempotency(deps.redis);
  await app.register(blobsRoutes, {
    store: deps.store,
    maxUploadBytes: deps.config.maxUploadBytes,
    tenantMaxStoredBytes: deps.config.tenantMaxStoredBytes,
    idempotency,
    owners,
  });
  await app.register(buildsRoutes, {
    redis: deps.redis,
    store: deps.store,
    builds: deps.builds,
    logs: deps.logs,
    queue: deps.queue,
    idempotency,
    owners,
    tenantMaxQueued: deps.config.tenantMaxQueued,
    registries: deps.registries,
    buildAttempts: deps.config.buildAttempts,
    cache: new RedisResultCache(deps.redis, deps.config.retentionSeconds),
    allowDevices: deps.config.allowDevices,
  });
  await app.register(eventsRoutes, { redis: deps.redis, builds: deps.builds, events: deps.events });
  await app.register(mergesRoutes, { store: deps.store, builds: deps.builds, owners });
  await app.register(pushesRoutes, { builds: deps.builds, queue: deps.pushQueue, registries: deps.registries });
  addMethodNotAllowedRoutes(app, new Map([...routes].map(([url, methods]) => [url, new Set(methods)])));
  return app;
}
