import type { Redis } from 'ioredis';
import type { Digest } from '../digest.ts';

const KEY_PREFIX = 'baler:tenant:';

/**
 * Which tenants may use which blobs. The store is shared and content-addressed (the same
 * bytes are kept once), but a tenant sees only the blobs it uploaded itself.
 */
export class BlobOwners {
  constructor(private readonly redis: Redis) {}

  async add(tenant: string, digest: Digest): Promise<void> {
    await this.redis.sadd(`${KEY_PREFIX}${tenant}:blobs`, digest);
  }

  async owns(tenant: string, digest: Digest): Promise<boolean> {
    return (await this.redis.sismember(`${KEY_PREFIX}${tenant}:blobs`, digest)) === 1;
  }
}
