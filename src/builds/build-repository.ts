import type { Redis } from 'ioredis';
import type { BuildRecord } from './build-record.ts';

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
}

function encode(fields: Partial<BuildRecord>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [field, value] of Object.entries(fields)) if (value !== undefined) out[field] = JSON.stringify(value);
  return out;
}
