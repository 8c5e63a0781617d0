import type { Redis } from 'ioredis';
import { FINAL_STATUSES } from '../builds/build-record.ts';
import type { BuildEvent, BuildEventKind, EventData, StateEventData } from './build-event.ts';

/**
 * Events kept per build: appends trim the oldest beyond this (approximately: Redis trims whole
 * stream nodes, so a stream may hold a few dozen more). A normal build makes tens of events;
 * only long logs of short lines or hours of progress reach the cap. The log itself stays
 * whole (up to BALER_MAX_LOG_BYTES) at /v1/builds/{id}/logs.
 */
export const EVENTS_MAX_LENGTH = 10_000;

/** The Redis stream of one build's events. */
export function eventsKey(buildId: string): string {
  return `baler:events:${buildId}`;
}

/**
 * Lua appending one event to a build's stream (`key`, `event`, `data`, `ttl` are Lua
 * expressions), so that scripts changing a record can emit its state event atomically.
 */
export function appendEventLua(key: string, event: string, data: string, ttl: string): string {
  return `redis.call('XADD', ${key}, 'MAXLEN', '~', ${EVENTS_MAX_LENGTH}, '*', 'event', ${event}, 'data', ${data})
          redis.call('EXPIRE', ${key}, ${ttl})`;
}

/** A stream entry (`[id, [field, value, …]]`) as an event. */
export function parseEntry([id, fields]: [string, string[]]): BuildEvent {
  const values = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) values.set(fields[i] as string, fields[i + 1] as string);
  return { id, event: values.get('event'), data: JSON.parse(values.get('data') ?? 'null') } as BuildEvent;
}

/** A running build's stream must not expire between two of its events, whatever the retention. */
const MIN_TTL_SECONDS = 3600;

/**
 * Where a build's events are written: a Redis stream per build (XADD by whoever makes the
 * event: the API on submit and cancel, the worker during the build), so any API replica can
 * serve any build's events. Each append pushes the stream's expiry to the retention of build
 * records (BALER_RETENTION_S, at least an hour) from now; removing a build (garbage
 * collection) removes its stream too.
 */
export class BuildEventStream {
  readonly ttlSeconds: number;

  constructor(
    private readonly redis: Redis,
    retentionSeconds: number,
  ) {
    this.ttlSeconds = Math.max(retentionSeconds, MIN_TTL_SECONDS);
  }

  async append<K extends BuildEventKind>(buildId: string, event: K, data: EventData[K]): Promise<void> {
    const key = eventsKey(buildId);
    await this.redis.multi().xadd(key, 'MAXLEN', '~', EVENTS_MAX_LENGTH, '*', 'event', event, 'data', JSON.stringify(data)).expire(key, this.ttlSeconds).exec();
  }

  /**
   * A finished build whose stream lacks its final state (expired, or the build finished by a
   * worker of an older version) gets it appended, so that a reader always reaches an end.
   * Looks at the last 100 events only: a final state is among the last few.
   */
  async ensureFinalState(buildId: string, state: StateEventData): Promise<void> {
    await this.redis.eval(
      `local final = cjson.decode(ARGV[3])
       for _, entry in ipairs(redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 100)) do
         local fields = entry[2]
         if fields[2] == 'state' and final[cjson.decode(fields[4]).status] then return 0 end
       end
       ${appendEventLua('KEYS[1]', "'state'", 'ARGV[1]', 'ARGV[2]')}
       return 1`,
      1,
      eventsKey(buildId),
      JSON.stringify(state),
      String(this.ttlSeconds),
      JSON.stringify(Object.fromEntries([...FINAL_STATUSES].map((s) => [s, true]))),
    );
  }
}
