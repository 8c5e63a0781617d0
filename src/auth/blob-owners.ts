import type { Redis } from 'ioredis';
import type { Digest } from '../digest.ts';

const KEY_PREFIX = 'baler:tenant:';
const OWNERS_PREFIX = 'baler:blob-owners:';

/**
 * Which tenants may use which blobs, and how many bytes each holds. The store is shared and
 * content-addressed (the same bytes are kept once), but a tenant sees only the blobs it
 * uploaded itself, and each upload counts against its uploader's storage quota once.
 */
export class BlobOwners {
  constructor(private readonly redis: Redis) {}

  async add(tenant: string, digest: Digest, size: number): Promise<void> {
    await this.redis.eval(
      `if redis.call('SADD', KEYS[1], ARGV[1]) == 1 then
         redis.call('INCRBY', KEYS[2], ARGV[2])
         redis.call('SADD', KEYS[3], ARGV[3])
       end`,
      3,
      `${KEY_PREFIX}${tenant}:blobs`,
      `${KEY_PREFIX}${tenant}:bytes`,
      OWNERS_PREFIX + digest,
      digest,
      String(size),
      tenant,
    );
  }

  async owns(tenant: string, digest: Digest): Promise<boolean> {
    return (await this.redis.sismember(`${KEY_PREFIX}${tenant}:blobs`, digest)) === 1;
  }

  /** Bytes of the blobs a tenant uploaded that are still stored. */
  async bytesOf(tenant: string): Promise<number> {
    return Number((await this.redis.get(`${KEY_PREFIX}${tenant}:bytes`)) ?? 0);
  }

  /** A blob was deleted from the store: it no longer belongs to, or counts for, anyone. */
  async forget(digest: Digest, size: number): Promise<void> {
    await this.redis.eval(
      `for _, tenant in ipairs(redis.call('SMEMBERS', KEYS[1])) do
         if redis.call('SREM', '${KEY_PREFIX}' .. tenant .. ':blobs', ARGV[1]) == 1 then
           redis.call('DECRBY', '${KEY_PREFIX}' .. tenant .. ':bytes', ARGV[2])
         end
       end
       redis.call('DEL', KEYS[1])`,
      1,
      OWNERS_PREFIX + digest,
      digest,
      String(size),
    );
  }
}
