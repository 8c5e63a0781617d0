import type { Logger } from '../log.ts';
import type { BuildEventKind, EventData } from './build-event.ts';
import type { BuildEventStream } from './event-stream.ts';

/** Progress events of one build: at most this often (plus the last one of a known total). */
const PROGRESS_INTERVAL_MS = 250;

/** Ends a started step; `detail` replaces the one it started with (e.g. with the bytes written). */
export type FinishStep = (detail?: Record<string, unknown>) => void;

/** What a build reports of its steps and progress as it runs (BuildReporter, or a sandbox's proxy of one). */
export interface StepReporter {
  stepStarted(name: string, detail?: Record<string, unknown>): FinishStep;
  /** A step whose result came from a cache: nothing was read or run. */
  stepCached(name: string, detail?: Record<string, unknown>): void;
  progress(what: string, bytesDone: number, bytesTotal?: number): void;
}

/**
 * What a running build tells its watchers, besides state and log: its steps (numbered in the
 * order they begin, timed, or marked cached) and byte progress (throttled). Appends go out in
 * call order and never fail the build (a lost event is logged); `flush()` waits for all of
 * them, so the worker can make sure they precede the build's final state.
 */
export class BuildReporter implements StepReporter {
  private nextIndex = 0;
  private pending: Promise<void> = Promise.resolve();
  private lastProgressAt = 0;

  constructor(
    private readonly stream: BuildEventStream,
    private readonly buildId: string,
    /** The build's logger (its lines carry the build id). */
    private readonly logger: Logger,
  ) {}

  stepStarted(name: string, detail?: Record<string, unknown>): FinishStep {
    const index = this.nextIndex++;
    const started = performance.now();
    this.emit('step', { name, phase: 'started', index, detail });
    return (done) => this.emit('step', { name, phase: 'finished', index, durationMs: Math.round(performance.now() - started), detail: done ?? detail });
  }

  /** A step whose result came from a cache: nothing was read or run. */
  stepCached(name: string, detail?: Record<string, unknown>): void {
    this.emit('step', { name, phase: 'cached', index: this.nextIndex++, detail });
  }

  progress(what: string, bytesDone: number, bytesTotal?: number): void {
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
    this.pending = this.pending
      .then(() => this.stream.append(this.buildId, event, data))
      .catch((err: unknown) => this.logger.warn({ err, event }, 'could not append a build event'));
  }
}

/**
 * `work` as a step of a build's events (when it has a reporter): started, then finished when
 * it succeeds, `describe`d by its result. A step that fails just ends: the build's failed
 * state follows.
 */
export async function reportStep<T>(
  reporter: StepReporter | undefined,
  name: string,
  detail: Record<string, unknown> | undefined,
  work: () => Promise<T>,
  describe?: (result: T) => Record<string, unknown>,
): Promise<T> {
  const finish = reporter?.stepStarted(name, detail);
  const result = await work();
  finish?.(describe ? { ...detail, ...describe(result) } : detail);
  return result;
}
