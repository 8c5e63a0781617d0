/**
 * Brings a tenant's stored bytes to just under its quota with one upload of random bytes,
 * whatever the service charged it so far: the next thing it stores must be checked.
 */
import { randomBytes } from 'node:crypto';
import type { TenantClient } from './hostile-service.ts';
import { chargedBytes } from './tenant-bytes.ts';

/** Uploads filler so that `room` bytes are left; returns what is charged afterwards. */
export async function fillQuota(client: TenantClient, redisUrl: string, quota: number, room: number): Promise<number> {
  const filler = quota - room - (await chargedBytes(redisUrl, client.tenant));
  if (filler > 0) await client.uploadOk(randomBytes(filler));
  return chargedBytes(redisUrl, client.tenant);
}
