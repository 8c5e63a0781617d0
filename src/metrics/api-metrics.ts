/**
 * The API's metrics. Two kinds:
 *  - this replica's own: HTTP latency, builds submitted, build-cache lookups, bytes uploaded;
 *  - the fleet's, read from Redis and the store on each scrape: builds by state, builds
 *    finished by outcome, queue depth, bytes stored. Every replica reports the same values for
 *    these, so aggregate them across replicas with max(), not sum().
 */
import type { Queue } from 'bullmq';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { BuildRepository } from '../builds/build-repository.ts';
import type { Logger } from '../log.ts';
import type { BlobStore } from '../store/blob-store.ts';
import { withTimeout } from '../with-timeout.ts';
import { createRegistry } from './registry.ts';
import { StoreUsage } from './store-usage.ts';

/** A scrape does not wait longer than this for Redis or the store. */
const COLLECT_TIMEOUT_MS = 2000;

export interface ApiMetricsSources {
  builds: BuildRepository;
  /** BullMQ queues by the name their depth is reported under. */
  queues: Record<string, Pick<Queue, 'getJobCounts'>>;
  store: BlobStore;
  /** How old the walked store usage may get before a scrape starts another walk. */
  storeUsageMaxAgeMs: number;
  logger: Logger;
}

export interface ApiMetrics {
  registry: Registry;
  httpDuration: Histogram<'method' | 'route' | 'status_code'>;
  buildsSubmitted: Counter<'cached'>;
  cacheLookups: Counter<'cache' | 'result'>;
  storeWrittenBytes: Counter;
}

export function createApiMetrics(sources: ApiMetricsSources): ApiMetrics {
  const registry = createRegistry();
  const usage = new StoreUsage(sources.store, sources.storeUsageMaxAgeMs);
  /** Runs a scrape-time read; on failure the metric has no samples this scrape (and we say why). */
  const collecting = async (what: string, read: () => Promise<void>, metric: { reset(): void }) => {
    try {
      await withTimeout(read(), COLLECT_TIMEOUT_MS);
    } catch (err) {
      metric.reset();
      sources.logger.warn({ err, metric: what }, 'metrics: cannot read a fleet-wide value');
    }
  };

  new Gauge({
    name: 'baler_builds',
    help: 'Builds of the whole fleet now queued or running (from Redis)',
    labelNames: ['state'],
    registers: [registry],
    async collect() {
      await collecting(
        'baler_builds',
        async () => {
          const counts = await sources.builds.counts();
          this.set({ state: 'queued' }, counts.queued);
          this.set({ state: 'running' }, counts.running);
        },
        this,
      );
    },
  });
  new Counter({
    name: 'baler_builds_finished_total',
    help: 'Builds of the whole fleet that finished, by outcome (succeeded includes build-cache hits; from Redis)',
    labelNames: ['outcome'],
    registers: [registry],
    async collect() {
      await collecting(
        'baler_builds_finished_total',
        async () => {
          const counts = await sources.builds.counts();
          this.reset();
          for (const outcome of ['succeeded', 'failed', 'cancelled']) this.inc({ outcome }, counts.finished[outcome] ?? 0);
        },
        this,
      );
    },
  });
  new Gauge({
    name: 'baler_queue_jobs',
    help: 'Jobs in the BullMQ queues, by queue and job state (waiting builds are `prioritized`)',
    labelNames: ['queue', 'state'],
    registers: [registry],
    async collect() {
      await collecting(
        'baler_queue_jobs',
        async () => {
          const all = await Promise.all(Object.entries(sources.queues).map(async ([name, queue]) => [name, await queue.getJobCounts()] as const));
          this.reset();
          for (const [queue, counts] of all) for (const [state, n] of Object.entries(counts)) this.set({ queue, state }, n);
        },
        this,
      );
    },
  });
  for (const [name, what] of [
    ['baler_store_bytes', 'Bytes of all blobs in the store'],
    ['baler_store_blobs', 'Blobs in the store'],
  ] as const) {
    new Gauge({
      name,
      help: `${what} (as of the last walk of it)`,
      registers: [registry],
      async collect() {
        await collecting(
          name,
          async () => {
            const now = await usage.current();
            this.set(name === 'baler_store_bytes' ? now.bytes : now.blobs);
          },
          this,
        );
      },
    });
  }

  return {
    registry,
    httpDuration: new Histogram({
      name: 'baler_http_request_duration_seconds',
      help: 'HTTP requests by route pattern, method and status code, and how long they took (to the last byte sent)',
      labelNames: ['method', 'route', 'status_code'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120],
      registers: [registry],
    }),
    buildsSubmitted: new Counter({
      name: 'baler_builds_submitted_total',
      help: 'Builds submitted to this replica: cached="true" when taken from the build cache (finished at once)',
      labelNames: ['cached'],
      registers: [registry],
    }),
    cacheLookups: new Counter({
      name: 'baler_cache_lookups_total',
      help: 'Cache lookups by cache (build here; layer and import on workers) and result (hit, miss)',
      labelNames: ['cache', 'result'],
      registers: [registry],
    }),
    storeWrittenBytes: new Counter({
      name: 'baler_store_written_bytes_total',
      help: 'Bytes of new blobs this process wrote to the store',
      registers: [registry],
    }),
  };
}
