import type { BuildLogWriter } from '../builds/build-log-writer.ts';
import type { BuildObserver, FinishStep, ProgressName, StepDetail, StepName } from '../builds/build-observer.ts';
import type { BuildReporter } from '../events/build-reporter.ts';
import type { Logger } from '../log.ts';
import type { WorkerMetrics } from '../metrics/worker-metrics.ts';

/** Where a build's observations go in the worker. */
export interface WorkerObserverSinks {
  /** The build's logger (its lines carry the build's ids). */
  logger: Logger;
  /** The build's log: its scripts' output. */
  log: BuildLogWriter;
  /** The build's events; absent: none are kept. */
  events?: BuildReporter;
  metrics?: Pick<WorkerMetrics, 'stepDuration' | 'cacheLookups'>;
}

/**
 * One build's observer in the worker: every step goes, under the one name it has, to the
 * build's events, a `build step` line of the service log (with its `phase`) and, once it has
 * finished, the step-duration metric; script output to the build's log; cache lookups to
 * their metric.
 */
export class WorkerObserver implements BuildObserver {
  /** The step begun last and when: where a build that seems stuck is. */
  current: { name: string; at: number } = { name: 'start', at: Date.now() };

  constructor(private readonly sinks: WorkerObserverSinks) {}

  stepStarted(name: StepName, detail?: StepDetail): FinishStep {
    const { logger, events, metrics } = this.sinks;
    this.current = { name, at: Date.now() };
    const started = performance.now();
    logger.info({ step: name, phase: 'started', ...detail }, 'build step');
    const finishEvent = events?.stepStarted(name, detail);
    return (done) => {
      const durationMs = Math.round(performance.now() - started);
      logger.info({ step: name, phase: 'finished', durationMs, ...(done ?? detail) }, 'build step');
      metrics?.stepDuration.observe({ step: name }, durationMs / 1000);
      finishEvent?.(done);
    };
  }

  stepCached(name: StepName, detail?: StepDetail): void {
    this.current = { name, at: Date.now() };
    this.sinks.logger.info({ step: name, phase: 'cached', ...detail }, 'build step');
    this.sinks.events?.stepCached(name, detail);
  }

  progress(what: ProgressName, bytesDone: number, bytesTotal?: number): void {
    this.sinks.events?.progress(what, bytesDone, bytesTotal);
  }

  log(text: string): void {
    this.sinks.log.write(text);
  }

  cacheLookup(cache: 'layer' | 'import', hit: boolean): void {
    this.sinks.metrics?.cacheLookups.inc({ cache, result: hit ? 'hit' : 'miss' });
  }
}
