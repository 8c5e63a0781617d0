/**
 * A writer that dies mid-put while holding part of its tenant's quota, for the reservation
 * expiry test: puts bytes that never end through a ChargedStore (REDIS_URL, DATA_DIR, TENANT,
 * QUOTA_BYTES, TTL_MS) and is killed by the test with SIGKILL.
 */
import { Readable } from 'node:stream';
import { TenantQuota } from '../../src/auth/tenant-quota.ts';
import { connectRedis } from '../../src/redis.ts';
import { ChargedStore } from '../../src/store/charged-store.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';

const env = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const quota = new TenantQuota(connectRedis(env('REDIS_URL')), { maxStoredBytes: Number(env('QUOTA_BYTES')), chunkBytes: 64 * 1024, reservationTtlMs: Number(env('TTL_MS')) });
const store = new ChargedStore(await FsBlobStore.create(env('DATA_DIR')), quota, env('TENANT'));
let sent = 0;
const source = new Readable({
  read() {
    if (sent >= 1024 * 1024) return; // 1 MiB, then nothing more, ever
    this.push(Buffer.alloc(64 * 1024, sent / (64 * 1024)));
    sent += 64 * 1024;
  },
});
await store.put(source);
