import { Readable } from 'node:stream';
import { fastifySSE } from '@fastify/sse';
import type { FastifyPluginAsync } from 'fastify';
import type { Redis } from 'ioredis';
import Negotiator from 'negotiator';
import { FINAL_STATUSES } from '../builds/build-record.ts';
import type { BuildRepository } from '../builds/build-repository.ts';
import { stateEventData, type BuildEvent } from '../events/build-event.ts';
import { BuildEventReader } from '../events/event-reader.ts';
import type { BuildEventStream } from '../events/event-stream.ts';
import { Problem } from '../problem.ts';
import { requireTenantBuild } from '../submission/tenant-build.ts';
import { loadSchemas } from './openapi.ts';

export interface EventsOptions {
  /** The API's connection; the plugin opens one more for its shared blocking reader. */
  redis: Redis;
  builds: BuildRepository;
  events: BuildEventStream;
  /**
   * How often an idle stream shows it is alive (default 15 s): an SSE comment line, or an
   * empty NDJSON line. Keeps proxies from closing it and lets clients tell a dead one apart.
   */
  heartbeatMs?: number;
  /** Streams one tenant may have open on this API process at once; over it, 429. */
  tenantMaxStreams: number;
}

const SSE = 'text/event-stream';
const NDJSON = 'application/x-ndjson';
/** Inlined for the header: Fastify cannot match a referenced schema's names to lowercased headers. */
const { $id: _, ...EVENT_ID } = loadSchemas().find((schema) => schema.$id === 'EventId') ?? { $id: '' };

/**
 * `GET /v1/builds/{id}/events`: a build's events (state, step, log, progress) from its Redis
 * stream, so any replica serves any build: first what happened so far (after `Last-Event-ID`
 * or `?lastEventId=` when given), then live, ending after the final state. As Server-Sent
 * Events (the stream entry id is the SSE `id:`), or NDJSON with `Accept: application/x-ndjson`.
 */
export const eventsRoutes: FastifyPluginAsync<EventsOptions> = async (app, opts) => {
  const heartbeatMs = opts.heartbeatMs ?? 15_000;
  await app.register(fastifySSE, { heartbeatInterval: heartbeatMs });
  const reader = new BuildEventReader(opts.redis, opts.redis.duplicate(), app.log);
  // Open streams would hold the server's close forever: end them (clients resume elsewhere).
  app.addHook('preClose', async () => reader.close());
  /** Open streams per tenant on this process: each holds a socket and a watch. */
  const open = new Map<string, number>();

  app.get<{ Params: { id: string }; Querystring: { lastEventId?: string }; Headers: { 'last-event-id'?: string } }>(
    '/v1/builds/:id/events',
    {
      // The handler negotiates between SSE and NDJSON itself.
      sse: 'manual',
      exposeHeadRoute: false,
      schema: {
        querystring: { type: 'object', additionalProperties: false, properties: { lastEventId: { $ref: 'EventId#' } } },
        headers: { type: 'object', properties: { 'last-event-id': EVENT_ID } },
      },
    },
    async (request, reply) => {
      const type = new Negotiator(request.raw).mediaType([SSE, NDJSON]);
      if (!type) throw new Problem(406, `build events are ${SSE} or ${NDJSON}; the Accept header allows neither`);
      const record = await requireTenantBuild(opts.builds, request.tenant, request.params.id);
      const tenant = request.tenant;
      const streams = open.get(tenant) ?? 0;
      if (streams >= opts.tenantMaxStreams) {
        void reply.header('Retry-After', '5');
        throw new Problem(429, `${streams} event streams of yours are open on this server (the limit); close one, or retry later`);
      }
      open.set(tenant, streams + 1);
      reply.raw.once('close', () => {
        const left = (open.get(tenant) ?? 1) - 1;
        if (left > 0) open.set(tenant, left);
        else open.delete(tenant);
      });
      // A build finished before its events were kept (or whose events expired) still ends.
      const final = FINAL_STATUSES.has(record.status) ? stateEventData(record) : undefined;
      if (final) await opts.events.ensureFinalState(record.id, final);

      // An EventSource reconnecting sends the header, while its URL keeps the first query.
      const after = request.headers['last-event-id'] ?? request.query.lastEventId;
      const abort = new AbortController();
      reply.raw.once('close', () => abort.abort());
      // Gone while the build was looked up: 'close' came before anyone listened.
      if (request.raw.socket.destroyed) abort.abort();
      const events = reader.watch(record.id, after, abort.signal, final !== undefined);
      request.log.debug({ buildId: record.id, type, after, watches: reader.size }, 'following build events');

      if (type === SSE) {
        reply.sse.sendHeaders();
        try {
          await reply.sse.send(events);
        } catch (err) {
          // The response has begun: no problem document now. It ends; the client resumes.
          if (reply.sse.isConnected) request.log.warn({ err, buildId: record.id }, 'following build events failed');
        }
        return;
      }
      void reply.header('Content-Type', NDJSON).header('Cache-Control', 'no-cache').header('X-Accel-Buffering', 'no');
      return reply.send(Readable.from(ndjson(events, heartbeatMs)));
    },
  );
};

/** One line per event; an empty line whenever `heartbeatMs` pass without one (jq skips them). */
async function* ndjson(events: AsyncIterable<BuildEvent>, heartbeatMs: number): AsyncGenerator<string> {
  const iterator = events[Symbol.asyncIterator]();
  // The next event stays awaited across heartbeats: none is lost to a heartbeat's turn.
  let next = iterator.next();
  try {
    for (;;) {
      let timer: NodeJS.Timeout | undefined;
      const beat = new Promise<'beat'>((resolve) => (timer = setTimeout(() => resolve('beat'), heartbeatMs)));
      const result = await Promise.race([next, beat]);
      clearTimeout(timer);
      if (result === 'beat') {
        yield '\n';
        continue;
      }
      if (result.done) return;
      const { id, event, data } = result.value;
      yield `${JSON.stringify({ id, event, data })}\n`;
      next = iterator.next();
    }
  } finally {
    // Not awaited: the watch ends by itself when the client goes (its abort signal).
    void iterator.return?.(undefined);
  }
}
