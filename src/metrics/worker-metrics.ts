/**
 * A build worker's metrics, served by the worker itself (metrics-server.ts): Prometheus
 * scrapes every worker host as its own target, so nothing is aggregated by hand.
 */
import { Counter, Histogram, type Registry } from 'prom-client';
import { createRegistry } from './registry.ts';

export type BuildOutcome = 'succeeded' | 'failed' | 'cancelled' | 'retried';

export interface WorkerMetrics {
  registry: Registry;
  /** A build attempt from taking the job to its end; `retried`: the attempt failed and the build went back to the queue. */
  buildDuration: Histogram<'outcome'>;
  stepDuration: Histogram<'step' | 'platform'>;
  cacheLookups: Counter<'cache' | 'result'>;
  vmBoots: Counter<'kind' | 'platform'>;
  vmBootFailures: Counter<'kind' | 'platform'>;
  storeWrittenBytes: Counter;
}

export function createWorkerMetrics(): WorkerMetrics {
  const registry = createRegistry();
  return {
    registry,
    buildDuration: new Histogram({
      name: 'baler_build_duration_seconds',
      help: 'Build attempts on this worker by outcome (succeeded, failed, cancelled, retried), and how long they ran',
      labelNames: ['outcome'],
      buckets: [0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600],
      registers: [registry],
    }),
    stepDuration: new Histogram({
      name: 'baler_build_step_duration_seconds',
      help: 'Build steps on this worker that ran, by name (base, contents, vm, layer, archive, as in build events) and, for vm steps, platform (linux/amd64, linux/arm64), and how long each took; steps taken from a cache are counted by baler_cache_lookups_total',
      labelNames: ['step', 'platform'],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800],
      registers: [registry],
    }),
    cacheLookups: new Counter({
      name: 'baler_cache_lookups_total',
      help: 'Cache lookups by cache (layer, import here; build on the API) and result (hit, miss)',
      labelNames: ['cache', 'result'],
      registers: [registry],
    }),
    vmBoots: new Counter({
      name: 'baler_vm_boots_total',
      help: 'MicroVMs started on this worker, by kind (cold: for one step, warm: for the pool) and platform (linux/amd64, linux/arm64: of those the worker serves)',
      labelNames: ['kind', 'platform'],
      registers: [registry],
    }),
    vmBootFailures: new Counter({
      name: 'baler_vm_boot_failures_total',
      help: 'MicroVMs that did not come up, by kind and platform: QEMU refused or failed, or a warm guest died or was not ready in time',
      labelNames: ['kind', 'platform'],
      registers: [registry],
    }),
    storeWrittenBytes: new Counter({
      name: 'baler_store_written_bytes_total',
      help: 'Bytes of new blobs this process wrote to the store',
      registers: [registry],
    }),
  };
}

/** A VM boot's kind: for one step (cold) or for the pool (warm). */
type VmBootKind = 'cold' | 'warm';

/**
 * The VM runners' boot observer (vm/runner-context.ts VmBootObserver), counting. `platform` is
 * the runner's, so the label takes only the platforms this worker runs VMs of.
 */
export function countVmBoots(metrics: Pick<WorkerMetrics, 'vmBoots' | 'vmBootFailures'>): {
  started(kind: VmBootKind, platform: string): void;
  failed(kind: VmBootKind, platform: string): void;
} {
  return {
    started: (kind, platform) => metrics.vmBoots.inc({ kind, platform }),
    failed: (kind, platform) => metrics.vmBootFailures.inc({ kind, platform }),
  };
}

/** Each kind of boot of each platform served, at 0: its series exist (and rates see its first boot) before it boots. */
export function zeroVmBoots(metrics: Pick<WorkerMetrics, 'vmBoots' | 'vmBootFailures'>, platforms: readonly string[]): void {
  for (const platform of platforms) {
    for (const kind of ['cold', 'warm'] as const) {
      metrics.vmBoots.inc({ kind, platform }, 0);
      metrics.vmBootFailures.inc({ kind, platform }, 0);
    }
  }
}
