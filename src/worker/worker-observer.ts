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
  /** The platform a single-platform build is for (`linux/arm64`); a multi-platform build's steps name theirs through forPlatform. */
  platform?: string;
}

/**
 * One build's observer in the worker: every step goes, under the one name it has and with the
 * platform it builds for, to the build's events, a `build step` line of the service log (with
 * its `phase`) and, once it has finished, the step-duration metric; script output to the
 * build's log; cache lookups to their metric.
 */
export class WorkerObserver implements BuildObserver {
  /** The step begun last, for which platform, and when: where a build that seems stuck is. */
  current: { name: string; platform?: string; at: number } = { name: 'start', at: Date.now() };

  constructor(private readonly sinks: WorkerObserverSinks) {}

  stepStarted(name: StepName, detail?: StepDetail): FinishStep {
    return this.startStep(name, detail, this.sinks.platform);
  }

  stepCached(name: StepName, detail?: StepDetail): void {
    this.cachedStep(name, detail, this.sinks.platform);
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

  /** The same build's observer, its steps naming `platform` (one of a multi-platform build's). */
  forPlatform(platform: string): BuildObserver {
    return {
      stepStarted: (name, detail) => this.startStep(name, detail, platform),
      stepCached: (name, detail) => this.cachedStep(name, detail, platform),
      progress: (what, done, total) => this.progress(what, done, total),
      log: (text) => this.log(text),
      cacheLookup: (cache, hit) => this.cacheLookup(cache, hit),
    };
  }

  private startStep(name: StepName, detail: StepDetail | undefined, platform: string | undefined): FinishStep {
    const { logger, events, metrics } = this.sinks;
    this.current = { name, ...named(platform), at: Date.now() };
    const started = performance.now();
    logger.info({ step: name, phase: 'started', ...named(platform), ...detail }, 'build step');
    const finishEvent = events?.stepStarted(name, detail, platform);
    return (done) => {
      const durationMs = Math.round(performance.now() - started);
      logger.info({ step: name, phase: 'finished', ...named(platform), durationMs, ...(done ?? detail) }, 'build step');
      // Only a VM step's platform is a label: a VM runs only on a platform this worker serves,
      // while other steps' architectures are whatever specs name.
      metrics?.stepDuration.observe(name === 'vm' && platform ? { step: name, platform } : { step: name }, durationMs / 1000);
      finishEvent?.(done);
    };
  }

  private cachedStep(name: StepName, detail: StepDetail | undefined, platform: string | undefined): void {
    this.current = { name, ...named(platform), at: Date.now() };
    this.sinks.logger.info({ step: name, phase: 'cached', ...named(platform), ...detail }, 'build step');
    this.sinks.events?.stepCached(name, detail, platform);
  }
}

/** `{ platform }` when there is one (no `platform: undefined` field in log lines and events). */
function named(platform: string | undefined): { platform?: string } {
  return platform === undefined ? {} : { platform };
}
