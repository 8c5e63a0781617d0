/** TenantQuota's Redis scripts against a real redis-server: reserve, renew, release, settle, charge, expire. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { BlobOwners } from '../../src/auth/blob-owners.ts';
import { TenantQuota } from '../../src/auth/tenant-quota.ts';
import type { Digest } from '../../src/digest.ts';
import { connectRedis } from '../../src/redis.ts';
import { startPrivateRedis, type PrivateRedis } from '../../src/redis-server.ts';
import { QuotaExceededError } from '../../src/store/blob-store.ts';

let dir: string;
let server: PrivateRedis;
let redis: Redis;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'baler-quota-'));
  server = await startPrivateRedis(join(dir, 'redis'));
  redis = connectRedis(server.url);
});

afterAll(async () => {
  redis?.disconnect();
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

const QUOTA = 1000;
const quota = (reservationTtlMs = 60_000) => new TenantQuota(redis, { maxStoredBytes: QUOTA, chunkBytes: 100, reservationTtlMs });
const digest = (n: number): Digest => `sha256:${n.toString(16).padStart(64, '0')}`;
let tenants = 0;
const freshTenant = () => `tenant-${++tenants}`;

it('reserves what is needed, more when there is room, never beyond the quota; a release frees it', async () => {
  const q = quota();
  const t = freshTenant();
  expect(await q.reserve(t, 'a', 100, 300)).toBe(300);
  expect(await q.reserve(t, 'b', 500, 900)).toBe(700); // all that is left
  expect(await q.usage(t)).toEqual({ stored: 0, reserved: 1000 });
  // Holding more for one write counts only what it does not hold yet.
  expect(await q.reserve(t, 'a', 300, 400)).toBe(300);
  const refused = await q.reserve(t, 'a', 301, 400).catch((e: unknown) => e);
  expect(refused).toBeInstanceOf(QuotaExceededError);
  expect(refused).toMatchObject({ quota: QUOTA, stored: 0, reserved: 700 });
  expect((refused as Error).message).toMatch(/quota of 1000 bytes/);
  await q.release(t, 'b');
  expect(await q.usage(t)).toEqual({ stored: 0, reserved: 300 });
  await q.release(t, 'a');
  await q.release(t, 'a'); // twice is harmless
  expect(await q.usage(t)).toEqual({ stored: 0, reserved: 0 });
});

it('settles a write into one charge per tenant and blob; forgetting the blob uncharges every tenant', async () => {
  const q = quota();
  const owners = new BlobOwners(redis);
  const [t, u] = [freshTenant(), freshTenant()];
  await q.reserve(t, 'w1', 400, 400);
  await q.settle(t, 'w1', { digest: digest(1), size: 400 });
  expect(await q.usage(t)).toEqual({ stored: 400, reserved: 0 });
  // Stored again by the same tenant: nothing more.
  await q.reserve(t, 'w2', 400, 400);
  await q.settle(t, 'w2', { digest: digest(1), size: 400 });
  expect(await q.usage(t)).toEqual({ stored: 400, reserved: 0 });
  expect(await q.references(t, digest(1))).toBe(true);
  // The same bytes stored by another tenant count for it too.
  await q.reserve(u, 'w3', 400, 400);
  await q.settle(u, 'w3', { digest: digest(1), size: 400 });
  expect(await owners.bytesOf(u)).toBe(400);
  await owners.forget(digest(1), 400);
  expect(await owners.bytesOf(t)).toBe(0);
  expect(await owners.bytesOf(u)).toBe(0);
  expect(await q.references(u, digest(1))).toBe(false);
});

it('charges stored blobs all or none, each once, against what is charged and reserved', async () => {
  const q = quota();
  const t = freshTenant();
  await q.chargeStored(t, [
    { digest: digest(2), size: 300 },
    { digest: digest(2), size: 300 },
    { digest: digest(3), size: 200 },
  ]);
  expect(await q.usage(t)).toEqual({ stored: 500, reserved: 0 });
  await q.reserve(t, 'w', 300, 300);
  // 201 new bytes (digest 2 is charged already) do not fit beside 500 charged and 300 reserved;
  await expect(
    q.chargeStored(t, [
      { digest: digest(2), size: 300 },
      { digest: digest(4), size: 201 },
    ]),
  ).rejects.toBeInstanceOf(QuotaExceededError);
  expect(await q.references(t, digest(4))).toBe(false);
  expect(await q.usage(t)).toEqual({ stored: 500, reserved: 300 });
  // exactly 200 do.
  await q.chargeStored(t, [
    { digest: digest(2), size: 300 },
    { digest: digest(4), size: 200 },
  ]);
  expect(await q.usage(t)).toEqual({ stored: 700, reserved: 300 });
});

it('drops a reservation that is not renewed within its TTL, keeps one that is', async () => {
  const q = quota(1000);
  const t = freshTenant();
  await q.reserve(t, 'dead', 600, 600);
  await q.reserve(t, 'alive', 300, 300);
  for (let i = 0; i < 7; i++) {
    await new Promise((r) => setTimeout(r, 200));
    await q.renew(t, 'alive');
  }
  // 1.4 s later: the dead writer's bytes are free, the living one's still held.
  expect(await q.usage(t)).toEqual({ stored: 0, reserved: 300 });
  expect(await q.reserve(t, 'next', 700, 700)).toBe(700);
  // A write whose reservation expired while it was still going gets it back when it asks again.
  await new Promise((r) => setTimeout(r, 1200));
  expect(await q.reserve(t, 'alive', 300, 300)).toBe(300);
  expect(await q.usage(t)).toEqual({ stored: 0, reserved: 300 });
  // Renewing what expired does not bring it back.
  await q.renew(t, 'next');
  expect(await q.usage(t)).toEqual({ stored: 0, reserved: 300 });
});
