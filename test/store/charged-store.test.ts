/**
 * ChargedStore over a real filesystem store and a real redis-server: concurrent puts of one
 * tenant, blobs shared by tenants, cache hits, and a writer killed while holding quota.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { BlobOwners } from '../../src/auth/blob-owners.ts';
import { TenantQuota } from '../../src/auth/tenant-quota.ts';
import type { Digest } from '../../src/digest.ts';
import { connectRedis } from '../../src/redis.ts';
import { startPrivateRedis, type PrivateRedis } from '../../src/redis-server.ts';
import { BlobNotFoundError, BlobTooLargeError, QuotaExceededError } from '../../src/store/blob-store.ts';
import { ChargedStore } from '../../src/store/charged-store.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';
import { startScript } from '../support/script-process.ts';

const WRITER = fileURLToPath(new URL('./charging-writer.ts', import.meta.url));
const MiB = 1024 * 1024;
const QUOTA = 3 * MiB;
const CHUNK = 256 * 1024;

let dir: string;
let root: string;
let server: PrivateRedis;
let redis: Redis;
let store: FsBlobStore;
let quota: TenantQuota;
let owners: BlobOwners;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'baler-charged-'));
  root = join(dir, 'store');
  server = await startPrivateRedis(join(dir, 'redis'));
  redis = connectRedis(server.url);
  store = await FsBlobStore.create(root);
  quota = new TenantQuota(redis, { maxStoredBytes: QUOTA, chunkBytes: CHUNK, reservationTtlMs: 60_000 });
  owners = new BlobOwners(redis);
});

afterAll(async () => {
  redis?.disconnect();
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

const digestOf = (bytes: Buffer): Digest => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
/** `bytes` in 64 KiB chunks, yielding to the event loop between them (so puts interleave). */
const trickle = (bytes: Buffer) =>
  Readable.from(
    (async function* () {
      for (let at = 0; at < bytes.length; at += 64 * 1024) {
        yield bytes.subarray(at, at + 64 * 1024);
        await new Promise((r) => setImmediate(r));
      }
    })(),
  );
const ingestIsEmpty = async () => expect(await readdir(join(root, 'ingest'))).toEqual([]);

it('parallel puts of one tenant end within its quota; each refused one is QuotaExceededError and keeps nothing', async () => {
  const tenant = 'parallel';
  const charged = new ChargedStore(store, quota, tenant);
  const blobs = Array.from({ length: 10 }, () => randomBytes(MiB));
  const results = await Promise.allSettled(blobs.map((b) => charged.put(trickle(b))));
  let kept = 0;
  for (const [i, result] of results.entries()) {
    const digest = digestOf(blobs[i] as Buffer);
    if (result.status === 'fulfilled') {
      kept += result.value.size;
      expect(await owners.owns(tenant, digest)).toBe(true);
    } else {
      expect(result.reason).toBeInstanceOf(QuotaExceededError);
      expect(await store.stat(digest)).toBeNull();
      expect(await owners.owns(tenant, digest)).toBe(false);
    }
  }
  expect(results.some((r) => r.status === 'rejected')).toBe(true);
  const bytes = await owners.bytesOf(tenant);
  expect(bytes).toBe(kept);
  expect(bytes).toBeLessThanOrEqual(QUOTA + CHUNK);
  // Every reservation settled or released: the rest of the room is usable.
  expect(await quota.usage(tenant)).toEqual({ stored: bytes, reserved: 0 });
  await charged.put(trickle(randomBytes(QUOTA - bytes)));
  await ingestIsEmpty();
});

it('reserves a size known in advance whole, before reading anything: what cannot fit is refused unread', async () => {
  const tenant = 'declared';
  const charged = new ChargedStore(store, quota, tenant);
  let read = 0;
  const counted = (bytes: Buffer) =>
    Readable.from(
      (async function* () {
        read += bytes.length;
        yield bytes;
      })(),
    );
  const blobs = Array.from({ length: 5 }, () => randomBytes(MiB));
  const results = await Promise.allSettled(blobs.map((b) => charged.put(counted(b), { expectedBytes: b.length })));
  // Three whole MiB fit in the quota; the other two never had a byte read.
  expect(results.filter((r) => r.status === 'fulfilled').length).toBe(QUOTA / MiB);
  for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(QuotaExceededError);
  expect(read).toBe(QUOTA);
  expect(await quota.usage(tenant)).toEqual({ stored: QUOTA, reserved: 0 });
  await ingestIsEmpty();
});

it('stores a blob the tenant is charged for again at no cost, even at its quota, if the bytes are the same', async () => {
  const tenant = 'again';
  const charged = new ChargedStore(store, quota, tenant);
  const small = randomBytes(MiB);
  await charged.put(trickle(small));
  await charged.put(trickle(randomBytes(QUOTA - MiB)));
  // Not known in advance: it must be reserved like any put, and there is no room.
  await expect(charged.put(trickle(small))).rejects.toBeInstanceOf(QuotaExceededError);
  expect(await charged.put(trickle(small), { expectedDigest: digestOf(small) })).toMatchObject({ created: false, size: MiB });
  // Claiming a blob of its own does not make other bytes free.
  await expect(charged.put(trickle(randomBytes(2 * MiB)), { expectedDigest: digestOf(small) })).rejects.toBeInstanceOf(BlobTooLargeError);
  expect(await quota.usage(tenant)).toEqual({ stored: QUOTA, reserved: 0 });
  await ingestIsEmpty();
});

it('charges bytes stored by one tenant to each tenant that stores or references them, once', async () => {
  const shared = randomBytes(MiB);
  const first = await new ChargedStore(store, quota, 'first').put(trickle(shared));
  const second = await new ChargedStore(store, quota, 'second').put(trickle(shared));
  // `created` is each tenant's view: the second tenant did not hold these bytes before (it is
  // charged for them), although the store did.
  expect([first.created, second.created]).toEqual([true, true]);
  expect((await new ChargedStore(store, quota, 'second').put(trickle(shared))).created).toBe(false);
  const third = new ChargedStore(store, quota, 'third');
  // A cache hit hands the tenant stored blobs: charged once each, all or none.
  await third.chargeStored([first.digest, first.digest]);
  await third.chargeStored([first.digest]);
  for (const tenant of ['first', 'second', 'third']) expect(await owners.bytesOf(tenant)).toBe(MiB);
  await expect(third.chargeStored([`sha256:${'0'.repeat(64)}`])).rejects.toBeInstanceOf(BlobNotFoundError);
  await third.put(trickle(randomBytes(2 * MiB)));
  const more = await new ChargedStore(store, quota, 'other').put(trickle(randomBytes(1024)));
  await expect(third.chargeStored([more.digest])).rejects.toBeInstanceOf(QuotaExceededError);
  expect(await owners.owns('third', more.digest)).toBe(false);
  // Deleted by garbage collection: nobody pays for it any more.
  await store.delete(first.digest);
  await owners.forget(first.digest, first.size);
  for (const tenant of ['first', 'second']) expect(await owners.bytesOf(tenant)).toBe(0);
});

it('a writer killed mid-put holds its reservation while alive and only until the TTL after it died', async () => {
  const tenant = 'killed';
  const ttlMs = 1500;
  const { child, output, exited } = startScript(WRITER, { REDIS_URL: server.url, DATA_DIR: root, TENANT: tenant, QUOTA_BYTES: String(QUOTA), TTL_MS: String(ttlMs) });
  try {
    for (const deadline = Date.now() + 60_000; (await quota.usage(tenant)).reserved < MiB; await new Promise((r) => setTimeout(r, 100))) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`the writer did not get going:\n${output()}`);
    }
    // Alive but stalled, it renews: its bytes stay held past the TTL.
    await new Promise((r) => setTimeout(r, 2 * ttlMs));
    expect((await quota.usage(tenant)).reserved).toBeGreaterThanOrEqual(MiB);
  } finally {
    child.kill('SIGKILL');
    await exited;
  }
  const killedAt = Date.now();
  while ((await quota.usage(tenant)).reserved > 0) {
    expect(Date.now() - killedAt).toBeLessThan(ttlMs + 5000);
    await new Promise((r) => setTimeout(r, 100));
  }
  // The whole quota is the tenant's again.
  await new ChargedStore(store, quota, tenant).put(trickle(randomBytes(QUOTA)));
}, 120_000);
