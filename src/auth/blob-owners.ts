import type { Redis } from 'ioredis';
import type { Digest } from '../digest.ts';

const KEY_PREFIX = 'baler:tenant:';
/** The set of tenants a blob is charged to is `<prefix><digest>`. */
export const BLOB_OWNERS_PREFIX = 'baler:blob-owners:';

/** The Redis keys of a tenant's share of the store (TenantQuota charges them). */
export function tenantBlobKeys(tenant: string): { blobs: string; bytes: string } {
  return { blobs: `${KEY_PREFIX}${tenant}:blobs`, bytes: `${KEY_PREFIX}${tenant}:bytes` };
}

/**
 * Which tenants may use which blobs, and how many bytes each holds. The store is shared and
 * content-addressed (the same bytes are kept once), but a tenant sees only the blobs charged
 * to it (TenantQuota charges each once per tenant, whoever stored it first).
 */
export class BlobOwners {
  constructor(private readonly redis: Redis) {}

  async owns(tenant: string, digest: Digest): Promise<boolean> {
    return (await this.redis.sismember(tenantBlobKeys(tenant).blobs, digest)) === 1;
  }

  /** Bytes of the blobs charged to a tenant that are still stored. */
  async bytesOf(tenant: string): Promise<number> {
    return Number((await this.redis.get(tenantBlobKeys(tenant).bytes)) ?? 0);
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
      BLOB_OWNERS_PREFIX + digest,
      digest,
      String(size),
    );
  }
}
