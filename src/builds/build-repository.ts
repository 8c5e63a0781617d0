import type { Redis } from 'ioredis';
import type { BuildRecord, BuildStatus } from './build-record.ts';

const KEY_PREFIX = 'baler:build:';

/**
 * Build records, kept in Redis so that every API replica and worker sees the same state. A
 * record is a hash with one JSON value per top-level field, so an update of some fields is a
 * single atomic HSET that leaves the others alone.
 */
export class BuildRepository {
  constructor(private readonly redis: Redis) {}

  async create(record: BuildRecord): Promise<void> {
    const key = KEY_PREFIX + record.id;
    const created = await this.redis.hsetnx(key, 'id', JSON.stringify(record.id));
    if (created !== 1) throw new Error(`build ${record.id} already exists`);
    await this.redis.hset(key, encode(record));
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
   * it applied.
   */
  async transition(id: string, from: BuildStatus[], patch: Partial<BuildRecord>): Promise<boolean> {
    const fields = encode(patch);
    const applied = await this.redis.eval(
      `local status = redis.call('HGET', KEYS[1], 'status')
       if not status then return 0 end
       local allowed = cjson.decode(ARGV[1])
       for _, s in ipairs(allowed) do
         if cjson.encode(s) == status then
           for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
           return 1
         end
       end
       return 0`,
      1,
      KEY_PREFIX + id,
      JSON.stringify(from),
      ...Object.entries(fields).flat(),
    );
    return applied === 1;
  }
}

function encode(fields: Partial<BuildRecord>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [field, value] of Object.entries(fields)) if (value !== undefined) out[field] = JSON.stringify(value);
  return out;
}
