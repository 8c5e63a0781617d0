import type { ProgressName, StepName } from '../builds/build-observer.ts';
import type { BuildRecord } from '../builds/build-record.ts';
import { FINAL_STATUSES } from '../builds/build-record.ts';

/** What a build's live events say (the SSE `event:` field; BuildEvent in openapi.yaml). */
export type BuildEventKind = 'state' | 'step' | 'log' | 'progress';

/** A status change: the record's fields that changed (`status` always). */
export type StateEventData = Partial<Omit<BuildRecord, 'id' | 'tenant' | 'spec' | 'pushes'>> & Pick<BuildRecord, 'status'>;

export type StepPhase = 'started' | 'finished' | 'cached';

/** A build step: `started` then `finished` with the same `index`, or `cached` alone. */
export interface StepEventData {
  name: StepName;
  phase: StepPhase;
  /** Steps of one attempt numbered from 0 in the order they began. */
  index: number;
  /**
   * The platform the step builds for (`linux/arm64`): a single-platform build's on every step,
   * a multi-platform build's on each platform's steps; none on its index's `archive` step.
   */
  platform?: string;
  /** On `finished`: how long the step took. */
  durationMs?: number;
  /** What the step works on (e.g. the base's reference, a layer's entry count, bytes written). */
  detail?: Record<string, unknown>;
}

/** Output of the build's scripts, the same text the build log gets. */
export interface LogEventData {
  text: string;
}

export interface ProgressEventData {
  /** What is being read or written. */
  what: ProgressName;
  bytesDone: number;
  bytesTotal?: number;
}

export interface EventData {
  state: StateEventData;
  step: StepEventData;
  log: LogEventData;
  progress: ProgressEventData;
}

/** One event as readers get it: `id` is the Redis stream entry id (the SSE `id:`). */
export type BuildEvent = {
  [K in BuildEventKind]: { id: string; event: K; data: EventData[K] };
}[BuildEventKind];

/** After this event nothing more is sent: the build reached a final state. */
export function isFinalEvent(event: BuildEvent): boolean {
  return event.event === 'state' && FINAL_STATUSES.has(event.data.status);
}

/** The state event of a record change: what changed, without the spec (the client sent it). */
export function stateEventData(fields: Partial<BuildRecord>): StateEventData | undefined {
  const { id: _id, tenant: _tenant, spec: _spec, pushes: _pushes, ...changed } = fields;
  return changed.status ? (changed as StateEventData) : undefined;
}
