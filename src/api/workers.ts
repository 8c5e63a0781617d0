import type { FastifyPluginAsync } from 'fastify';
import type { Redis } from 'ioredis';
import { liveWorkers } from '../queue/worker-registry.ts';

/** `GET /v1/workers`: the live workers and what they can run (their last heartbeat). */
export const workersRoutes: FastifyPluginAsync<{ redis: Redis }> = async (app, { redis }) => {
  app.get('/v1/workers', async () => ({ workers: await liveWorkers(redis) }));
};
