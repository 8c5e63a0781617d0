import { collectDefaultMetrics, Registry } from 'prom-client';

/**
 * A process's own registry (never prom-client's global one) with the default process and
 * Node.js metrics (`process_*`, `nodejs_*`, their standard names); baler's own metrics are
 * named `baler_*`.
 */
export function createRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return registry;
}

/** Prometheus' text exposition format (0.0.4), what `/metrics` answers with. */
export const METRICS_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;
