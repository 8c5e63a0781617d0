import type { FastifyInstance } from 'fastify';
import type { ApiMetrics } from '../metrics/api-metrics.ts';
import { METRICS_CONTENT_TYPE } from '../metrics/registry.ts';

/**
 * `GET /metrics` (Prometheus text format) and the HTTP latency of every route. Behind the same
 * authentication as the rest of the API (see auth.ts): a bearer token when the service has
 * tokens; open when it has none, which it only allows on loopback or with BALER_AUTH=none.
 */
export function registerMetrics(app: FastifyInstance, metrics: ApiMetrics): void {
  app.addHook('onResponse', async (request, reply) => {
    // The route's pattern, never the raw URL: ids and digests would make a series each.
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.httpDuration.observe({ method: request.method, route, status_code: String(reply.statusCode) }, reply.elapsedTime / 1000);
  });
  app.get('/metrics', async (_request, reply) => reply.type(METRICS_CONTENT_TYPE).send(await metrics.registry.metrics()));
}
