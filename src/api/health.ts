import type { FastifyPluginAsync } from 'fastify';
import type { Redis } from 'ioredis';
import type { BlobStore } from '../store/blob-store.ts';
import { operationSchema } from './openapi.ts';
import { withTimeout } from '../with-timeout.ts';

export interface HealthOptions {
  redis: Redis;
  store: BlobStore;
}

const CHECK_TIMEOUT_MS = 2000;

/** `/healthz`: the process answers. `/readyz`: and Redis and the store work. */
export const healthRoutes: FastifyPluginAsync<HealthOptions> = async (app, { redis, store }) => {
  app.get('/healthz', { config: { public: true }, schema: operationSchema('healthz') }, async () => ({ status: 'ok' }));

  app.get('/readyz', { config: { public: true }, schema: operationSchema('readyz') }, async (_request, reply) => {
    const checks: Record<string, string> = {};
    const run = async (name: string, check: () => Promise<unknown>) => {
      try {
        await withTimeout(check(), CHECK_TIMEOUT_MS);
        checks[name] = 'ok';
      } catch (err) {
        checks[name] = (err as Error).message;
      }
    };
    await Promise.all([run('redis', () => redis.ping()), run('store', () => store.ping())]);
    const ok = Object.values(checks).every((v) => v === 'ok');
    return reply.status(ok ? 200 : 503).send({ status: ok ? 'ok' : 'unavailable', checks });
  });
};
