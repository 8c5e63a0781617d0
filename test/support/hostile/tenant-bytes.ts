/**
 * What the service charges a tenant against BALER_TENANT_MAX_STORED_BYTES, read straight from
 * its Redis, and what the store holds on disk: the two numbers a quota test compares.
 */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { tenantBlobKeys } from '../../../src/auth/blob-owners.ts';

/** Bytes of the blobs charged to the tenant (settled; writes in progress hold reservations beside them). */
export async function chargedBytes(redisUrl: string, tenant: string): Promise<number> {
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    return Number((await redis.get(tenantBlobKeys(tenant).bytes)) ?? 0);
  } finally {
    redis.disconnect();
  }
}

/** Bytes of every file under the store's directory (blobs, whatever is half-written, indexes). */
export async function storeBytes(dir: string): Promise<number> {
  let total = 0;
  const entries = await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => []);
  for (const entry of entries) {
    if (!entry.isFile()) continue;
    total += (await stat(join(entry.parentPath ?? entry.path, entry.name)).catch(() => ({ size: 0 }))).size;
  }
  return total;
}
