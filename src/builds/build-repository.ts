import type { Redis } from 'ioredis';
import { stateEventData } from '../events/build-event.ts';
import { appendEventLua, eventsKey, type BuildEventStream } from '../events/event-stream.ts';
import type { BuildRecord, BuildStatus } from './build-record.ts';

const KEY_PREFIX = 'baler:build:';
const TENANT_PREFIX = 'baler:tenant:';
/** Finished builds by when they finished (ms), for retention. */
const FINISHED_KEY = 'baler:builds:finished';
/** Builds without a tenant (made before tenants, or by the service without tokens). */
const DEFAULT_TENANT = 'default';

function queuedKey(tenant: string): string {
  return `${TENANT_PREFIX}${tenant}:queued`;
}

/** Lua: the state event of a change (ARGV[4], empty for none) appended to `key`, expiring in ARGV[5] s. */
function stateEventLua(key: string): string {
  return `if ARGV[4] ~= '' then ${appendEventLua(key, "'state'", 'ARGV[4]', 'ARGV[5]')} end`;
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
       if ARGV[2] == 'queued' then redis.call('SADD', KEYS[2], cjson.decode(ARGV[3])) end
       if ARGV[2] == 'succeeded' or ARGV[2] == 'failed' or ARGV[2] == 'cancelled' then
         local t = redis.call('TIME')
         redis.call('ZADD', '${FINISHED_KEY}', t[1] * 1000 + math.floor(t[2] / 1000), cjson.decode(ARGV[3]))
       end
       return waiting`,
      3,
      KEY_PREFIX + record.id,
      queuedKey(record.tenant ?? DEFAULT_TENANT),
      eventsKey(record.id),
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
    const tx = this.redis.multi().del(KEY_PREFIX + id, `${KEY_PREFIX}${id}:log`, eventsKey(id)).zrem(FINISHED_KEY, id);
    if (record) tx.srem(queuedKey(record.tenant ?? DEFAULT_TENANT), id).srem(`${TENANT_PREFIX}${record.tenant ?? DEFAULT_TENANT}:running`, id);
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

  async get(id: string): Promise<BuildRecord | null> {
    const fields = await this.redis.hgetall(KEY_PREFIX + id);
    if (!fields.status) return null;
    const record: Record<string, unknown> = {};
    for (const [field, value] of Object.entries(fields)) record[field] = JSON.parse(value);
    return record as unknown as BuildRecord;
  }

  async update(id: string, patch: Partial<BuildRecord>): Promise<void> {
    await this.redis.hset(KEY_PREFIX + id, encode(patch));
  }

  /**
   * Apply `patch` only if the build's status is one of `from`, atomically (a Lua script), so
   * that a cancel and a worker finishing at the same moment cannot both win. Returns whether
   * it applied. The tenant's sets of queued and running builds follow the status in the same
   * step. With `maxRunning`, a queued build is not moved on while its tenant already has that
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
           for i = 6, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
           ${stateEventLua('KEYS[2]')}
           local now = redis.call('HGET', KEYS[1], 'status')
           if now == '"queued"' then redis.call('SADD', queued, id) else redis.call('SREM', queued, id) end
           if now == '"running"' then redis.call('SADD', running, id) else redis.call('SREM', running, id) end
           if now == '"succeeded"' or now == '"failed"' or now == '"cancelled"' then
             local t = redis.call('TIME')
             redis.call('ZADD', '${FINISHED_KEY}', t[1] * 1000 + math.floor(t[2] / 1000), id)
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

function encode(fields: Partial<BuildRecord>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [field, value] of Object.entries(fields)) if (value !== undefined) out[field] = JSON.stringify(value);
  return out;
}
