import type { BuildObserver, FinishStep, ProgressName, StepDetail, StepName } from '../builds/build-observer.ts';
import type { Logger } from '../log.ts';
import type { BuildEventKind, EventData } from './build-event.ts';
import type { BuildEventStream } from './event-stream.ts';

/** Progress events of one build: at most this often (plus the last one of a known total). */
const PROGRESS_INTERVAL_MS = 250;

/**
 * What a running build tells its watchers, besides state and log: its steps (numbered in the
 * order they begin, timed, or marked cached) and byte progress (throttled). Appends go out in
 * call order and never fail the build (a lost event is logged); `flush()` waits for all of
 * them, so the worker can make sure they precede the build's final state.
 */
export class BuildReporter implements Pick<BuildObserver, 'stepStarted' | 'stepCached' | 'progress'> {
  private nextIndex = 0;
  private pending: Promise<void> = Promise.resolve();
  private lastProgressAt = 0;

  constructor(
    private readonly stream: BuildEventStream,
    private readonly buildId: string,
    /** The build's logger (its lines carry the build id). */
    private readonly logger: Logger,
  ) {}

  /** A step begins (`platform`: the one it builds for, when known); the step's index is the next one of the build's. */
  stepStarted(name: StepName, detail?: StepDetail, platform?: string): FinishStep {
    const index = this.nextIndex++;
    const started = performance.now();
    const named = platform === undefined ? {} : { platform };
    this.emit('step', { name, phase: 'started', index, ...named, detail });
    return (done) => this.emit('step', { name, phase: 'finished', index, ...named, durationMs: Math.round(performance.now() - started), detail: done ?? detail });
  }

  /** A step whose result came from a cache: nothing was read or run. */
  stepCached(name: StepName, detail?: StepDetail, platform?: string): void {
    this.emit('step', { name, phase: 'cached', index: this.nextIndex++, ...(platform === undefined ? {} : { platform }), detail });
  }

  progress(what: ProgressName, bytesDone: number, bytesTotal?: number): void {
    const now = Date.now();
    if (now - this.lastProgressAt < PROGRESS_INTERVAL_MS && bytesDone !== bytesTotal) return;
    this.lastProgressAt = now;
    this.emit('progress', bytesTotal === undefined ? { what, bytesDone } : { what, bytesDone, bytesTotal });
  }

  /** Resolves once every event reported so far is in the stream (or given up on). */
  flush(): Promise<void> {
    return this.pending;
  }

  private emit<K extends BuildEventKind>(event: K, data: EventData[K]): void {
    this.pending = this.pending.then(() => this.stream.append(this.buildId, event, data)).catch((err: unknown) => this.logger.warn({ err, event }, 'could not append a build event'));
  }
}
