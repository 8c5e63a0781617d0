/**
 * The steps of a build, by the names its events carry (StepEvent in openapi.yaml); its service
 * log lines and metrics use the same names. `layer` is the writing of one layer, inside
 * `contents` or `vm`.
 */
export type StepName = 'base' | 'contents' | 'vm' | 'layer' | 'archive';

/** What bytes are being read or written (ProgressEvent in openapi.yaml). */
export type ProgressName = 'import' | 'layer' | 'archive';

/** What a step works on (the base's reference, a layer's entry count, bytes written, …). */
export type StepDetail = Record<string, unknown>;

/** Ends a started step; `detail` replaces the one it started with (e.g. with the bytes written). */
export type FinishStep = (detail?: StepDetail) => void;

/**
 * Everything a running build tells the world: its steps as they start, finish or come from a
 * cache, bytes of progress, its scripts' output, and its cache lookups. The worker makes its
 * log, events, service log lines and metrics of these (src/worker/worker-observer.ts); a
 * sandboxed build's calls are forwarded from its thread. A step that fails just ends: the
 * build's failure follows.
 */
export interface BuildObserver {
  stepStarted(name: StepName, detail?: StepDetail): FinishStep;
  /** A step whose result came from a cache: nothing was read or run. */
  stepCached(name: StepName, detail?: StepDetail): void;
  progress(what: ProgressName, bytesDone: number, bytesTotal?: number): void;
  /** Output of the build's scripts (and device-rule lines), for its log. */
  log(text: string): void;
  /** A layer or import cache lookup, and whether it hit (a hit whose blobs are gone is a miss). */
  cacheLookup(cache: 'layer' | 'import', hit: boolean): void;
  /**
   * This observer for the steps of one platform (`linux/arm64`) of a multi-platform build, so
   * that their events, log lines and metrics name it. Absent: the steps are told as they are.
   */
  forPlatform?(platform: string): BuildObserver;
}

/** Tells nobody anything (builds run outside a worker: tests, benchmarks). */
export const SILENT_OBSERVER: BuildObserver = {
  stepStarted: () => () => {},
  stepCached: () => {},
  progress: () => {},
  log: () => {},
  cacheLookup: () => {},
};

/** `work` as a step: started, then finished when it succeeds, `describe`d by its result. */
export async function observeStep<T>(observer: BuildObserver, name: StepName, detail: StepDetail | undefined, work: () => Promise<T>, describe?: (result: T) => StepDetail): Promise<T> {
  const finish = observer.stepStarted(name, detail);
  const result = await work();
  finish(describe ? { ...detail, ...describe(result) } : detail);
  return result;
}
