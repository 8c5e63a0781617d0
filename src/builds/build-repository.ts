import type { Redis } from 'ioredis';
import { stateEventData } from '../events/build-event.ts';
import { appendEventLua, eventsKey, type BuildEventStream } from '../events/event-stream.ts';
import type { BuildRecord, BuildStatus } from './build-record.ts';
import { DEFAULT_TENANT, tenantOf } from './tenant.ts';

const KEY_PREFIX = 'baler:build:';
const TENANT_PREFIX = 'baler:tenant:';
/** Finished builds by when they finished (ms), for retention. */
const FINISHED_KEY = 'baler:builds:finished';
/**
 * All tenants' queued and running builds together (sets of ids) and how many builds ever finished,
 * by outcome (a hash): kept in the same atomic step as each state change, so that metrics
 * read the fleet's build counts with three O(1) calls instead of a scan of all records.
 */
const ALL_QUEUED_KEY = 'baler:builds:queued';
const ALL_RUNNING_KEY = 'baler:builds:running';
const FINISHED_COUNT_KEY = 'baler:builds:finished-count';

export interface BuildCounts {
  queued: number;
  running: number;
  /** Builds that ever finished (succeeded, failed, cancelled), by outcome: a counter. */
  finished: Record<string, number>;
}

/** How many of a tenant's newest builds `recent` can list; older ones fall off the index. */
const RECENT_KEPT = 1000;

function queuedKey(tenant: string): string {
  return `${TENANT_PREFIX}${tenant}:queued`;
}

/** Lua: the state event of a change (ARGV[4], empty for none) appended to `key`, expiring in ARGV[5] s. */
function stateEventLua(key: string): string {
  return `if ARGV[4] ~= '' then ${appendEventLua(key, "'state'", 'ARGV[4]', 'ARGV[5]')} end`;
}

/**
 * A tenant's builds by when they were submitted, in microseconds (so that builds submitted one
 * after another keep their order): what `GET /v1/builds` lists.
 */
function recentKey(tenant: string): string {
  return `${TENANT_PREFIX}${tenant}:builds`;
}

/**
 * Build records, kept in Redis so that every API replica and worker sees the same state. A
 * record is a hash with one JSON value per top-level field, so an update of some fields is a
 * single atomic HSET that leaves the others alone. With `events`, every status change appends
 * its state event to the build's event stream in the same atomic step.
 */
export class BuildRepository {
  constructor(
    private readonly redis: Redis,
    private readonly events?: BuildEventStream,
  ) {}

  /** ARGV[4] and ARGV[5] of the scripts below: the state event of a change (or ''), its stream's expiry. */
  private stateEvent(fields: Partial<BuildRecord>): [data: string, ttl: string] {
    const data = this.events ? stateEventData(fields) : undefined;
    return [data ? JSON.stringify(data) : '', String(this.events?.ttlSeconds ?? 0)];
  }

  /**
   * Store a new build (queued, or already finished: a build-cache hit) if its tenant has fewer
   * than `maxQueued` builds waiting, in one atomic step (so concurrent submissions cannot
   * overshoot the quota). Returns how many were waiting before it, or null when the quota is
   * reached.
   */
  async create(record: BuildRecord, maxQueued = Number.MAX_SAFE_INTEGER): Promise<number | null> {
    const queued = await this.redis.eval(
      `local waiting = redis.call('SCARD', KEYS[2])
       if waiting >= tonumber(ARGV[1]) then return -1 end
       if redis.call('HSETNX', KEYS[1], 'id', ARGV[3]) == 0 then return redis.error_reply('build exists') end
       for i = 6, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
       ${stateEventLua('KEYS[3]')}
       if ARGV[2] == 'queued' then
         redis.call('SADD', KEYS[2], cjson.decode(ARGV[3]))
         redis.call('SADD', '${ALL_QUEUED_KEY}', cjson.decode(ARGV[3]))
       end
       local now = redis.call('TIME')
       -- As text: Lua would print the number as 1.7641872e+15, losing the microseconds.
       redis.call('ZADD', KEYS[4], now[1] .. string.format('%06d', tonumber(now[2])), cjson.decode(ARGV[3]))
       redis.call('ZREMRANGEBYRANK', KEYS[4], 0, -${RECENT_KEPT + 1})
       if ARGV[2] == 'succeeded' or ARGV[2] == 'failed' or ARGV[2] == 'cancelled' then
         local t = redis.call('TIME')
         redis.call('ZADD', '${FINISHED_KEY}', t[1] * 1000 + math.floor(t[2] / 1000), cjson.decode(ARGV[3]))
         redis.call('HINCRBY', '${FINISHED_COUNT_KEY}', ARGV[2], 1)
       end
       return waiting`,
      4,
      KEY_PREFIX + record.id,
      queuedKey(tenantOf(record)),
      eventsKey(record.id),
      recentKey(tenantOf(record)),
      String(maxQueued),
      record.status,
      JSON.stringify(record.id),
      ...this.stateEvent(record),
      ...Object.entries(encode(record)).flat(),
    );
    return queued === -1 ? null : Number(queued);
  }

  /** Ids of builds that finished before `ms` (epoch milliseconds). */
  async finishedBefore(ms: number): Promise<string[]> {
    return this.redis.zrangebyscore(FINISHED_KEY, '-inf', `(${ms}`);
  }

  /** Forget a build: its record, its log and its place in every index. */
  async remove(id: string): Promise<void> {
    const record = await this.get(id);
    const tx = this.redis
      .multi()
      .del(KEY_PREFIX + id, `${KEY_PREFIX}${id}:log`, eventsKey(id))
      .zrem(FINISHED_KEY, id)
      .srem(ALL_QUEUED_KEY, id)
      .srem(ALL_RUNNING_KEY, id);
    if (record) {
      const tenant = tenantOf(record);
      tx.srem(queuedKey(tenant), id).srem(`${TENANT_PREFIX}${tenant}:running`, id).zrem(recentKey(tenant), id);
    }
    await tx.exec();
  }

  /** Every build record (a SCAN: it does not block Redis). */
  async *all(): AsyncIterable<BuildRecord> {
    let cursor = '0';
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', `${KEY_PREFIX}*`, 'COUNT', 500);
      cursor = next;
      for (const key of keys) {
        if (key.endsWith(':log')) continue;
        const record = await this.get(key.slice(KEY_PREFIX.length));
        if (record) yield record;
      }
    } while (cursor !== '0');
  }

  /** A tenant's newest builds, newest first, at most `limit` (their records, read in one round trip). */
  async recent(tenant: string, limit: number): Promise<BuildRecord[]> {
    const ids = await this.redis.zrevrange(recentKey(tenant), 0, limit - 1);
    if (ids.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const id of ids) pipeline.hgetall(KEY_PREFIX + id);
    const replies = (await pipeline.exec()) ?? [];
    return replies.flatMap(([err, fields]) => {
      if (err) throw err;
      // Gone meanwhile (retention): skip it.
      return decode(fields as Record<string, string>) ?? [];
    });
  }

  /** The fleet's queued and running builds and the finished ones by outcome (for metrics). */
  async counts(): Promise<BuildCounts> {
    const [queued, running, finished] = await Promise.all([this.redis.scard(ALL_QUEUED_KEY), this.redis.scard(ALL_RUNNING_KEY), this.redis.hgetall(FINISHED_COUNT_KEY)]);
    return { queued, running, finished: Object.fromEntries(Object.entries(finished).map(([outcome, n]) => [outcome, Number(n)])) };
  }

  async get(id: string): Promise<BuildRecord | null> {
    return decode(await this.redis.hgetall(KEY_PREFIX + id));
  }

  async update(id: string, patch: Partial<BuildRecord>): Promise<void> {
    await this.redis.hset(KEY_PREFIX + id, encode(patch));
  }

  /** Set `patch` and remove `fields`, in one step (MULTI): a record never shows one without the other. */
  async replace(id: string, patch: Partial<BuildRecord>, fields: Array<keyof BuildRecord>): Promise<void> {
    await this.redis
      .multi()
      .hdel(KEY_PREFIX + id, ...fields)
      .hset(KEY_PREFIX + id, encode(patch))
      .exec();
  }

  /**
   * Apply `patch` only if the build's status is one of `from`, atomically (a Lua script), so
   * that a cancel and a worker finishing at the same moment cannot both win. Returns whether
   * it applied. The tenant's sets of queued and running builds follow the status in the same
   * step, and `waiting` is cleared unless `patch` sets it. With `maxRunning`, a queued build is not moved on while its tenant already has that
   * many running ('busy').
   */
  async transition(id: string, from: BuildStatus[], patch: Partial<BuildRecord>, maxRunning = 0): Promise<boolean | 'busy'> {
    const fields = encode(patch);
    const applied = await this.redis.eval(
      `local status = redis.call('HGET', KEYS[1], 'status')
       if not status then return 0 end
       local allowed = cjson.decode(ARGV[1])
       local tenant = redis.call('HGET', KEYS[1], 'tenant')
       tenant = tenant and cjson.decode(tenant) or ARGV[2]
       local queued = '${TENANT_PREFIX}' .. tenant .. ':queued'
       local running = '${TENANT_PREFIX}' .. tenant .. ':running'
       local id = cjson.decode(redis.call('HGET', KEYS[1], 'id'))
       for _, s in ipairs(allowed) do
         if cjson.encode(s) == status then
           local limit = tonumber(ARGV[3])
           if limit > 0 and status == '"queued"' and redis.call('SCARD', running) >= limit then return -1 end
           -- What a build waited for is over once its status changes (unless the patch says it again).
           redis.call('HDEL', KEYS[1], 'waiting')
           for i = 6, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
           ${stateEventLua('KEYS[2]')}
           local now = redis.call('HGET', KEYS[1], 'status')
           -- The tenant's and the fleet's sets of queued and running builds.
           for _, set in ipairs({{'"queued"', queued, '${ALL_QUEUED_KEY}'}, {'"running"', running, '${ALL_RUNNING_KEY}'}}) do
             local op = now == set[1] and 'SADD' or 'SREM'
             redis.call(op, set[2], id)
             redis.call(op, set[3], id)
           end
           if now == '"succeeded"' or now == '"failed"' or now == '"cancelled"' then
             local t = redis.call('TIME')
             redis.call('ZADD', '${FINISHED_KEY}', t[1] * 1000 + math.floor(t[2] / 1000), id)
             redis.call('HINCRBY', '${FINISHED_COUNT_KEY}', cjson.decode(now), 1)
           end
           return 1
         end
       end
       return 0`,
      2,
      KEY_PREFIX + id,
      eventsKey(id),
      JSON.stringify(from),
      DEFAULT_TENANT,
      String(maxRunning),
      ...this.stateEvent(patch),
      ...Object.entries(fields).flat(),
    );
    return applied === -1 ? 'busy' : applied === 1;
  }
}

function decode(fields: Record<string, string>): BuildRecord | null {
  if (!fields.status) return null;
  const record: Record<string, unknown> = {};
  for (const [field, value] of Object.entries(fields)) record[field] = JSON.parse(value);
  return record as unknown as BuildRecord;
}

function encode(fields: Partial<BuildRecord>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [field, value] of Object.entries(fields)) if (value !== undefined) out[field] = JSON.stringify(value);
  return out;
}
