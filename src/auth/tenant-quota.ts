import type { Redis } from 'ioredis';
import type { Config } from '../config.ts';
import type { Digest } from '../digest.ts';
import { QuotaExceededError, type BlobInfo } from '../store/blob-store.ts';
import { BLOB_OWNERS_PREFIX, BlobOwners, tenantBlobKeys } from './blob-owners.ts';

export interface QuotaSettings {
  /** Bytes of stored blobs one tenant may be charged for. */
  maxStoredBytes: number;
  /** The most a write reserves at once, ahead of the bytes that arrived (fewer Redis calls). */
  chunkBytes: number;
  /** A reservation not renewed for this long is dropped: its writer died. */
  reservationTtlMs: number;
}

export function quotaSettings(config: Pick<Config, 'tenantMaxStoredBytes' | 'quotaChunkBytes' | 'quotaReservationTtlSeconds'>): QuotaSettings {
  return { maxStoredBytes: config.tenantMaxStoredBytes, chunkBytes: config.quotaChunkBytes, reservationTtlMs: config.quotaReservationTtlSeconds * 1000 };
}

/**
 * Every script names the same keys: KEYS[1] the tenant's reservation deadlines (a sorted set,
 * id → ms), KEYS[2] the bytes each holds (a hash), KEYS[3] their sum, KEYS[4] the digests
 * charged to it, KEYS[5] their bytes. Time is Redis's own, the same for every host.
 */
const LUA_PRELUDE = `
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function number_at(key) return tonumber(redis.call('GET', key) or 0) end
local function release(id)
  local held = redis.call('HGET', KEYS[2], id)
  if held then
    redis.call('DECRBY', KEYS[3], held)
    redis.call('HDEL', KEYS[2], id)
  end
  redis.call('ZREM', KEYS[1], id)
end
-- Reservations whose writer stopped renewing them (it died) give their bytes back.
local function drop_expired(now)
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do release(id) end
end
-- Once per tenant and blob, whoever stored it first.
local function charge(digest, size, tenant)
  if redis.call('SADD', KEYS[4], digest) == 1 then
    redis.call('INCRBY', KEYS[5], size)
    redis.call('SADD', '${BLOB_OWNERS_PREFIX}' .. digest, tenant)
  end
end
`;

/** ARGV: id, bytes needed held in all, bytes wanted held in all, quota, ttl ms. → {held or -1, stored, held by others}. */
const RESERVE = `${LUA_PRELUDE}
local now = now_ms()
drop_expired(now)
local id = ARGV[1]
local have = tonumber(redis.call('HGET', KEYS[2], id) or 0)
local stored = number_at(KEYS[5])
local others = number_at(KEYS[3]) - have
local room = tonumber(ARGV[4]) - stored - others
if tonumber(ARGV[2]) > room then return {-1, stored, others} end
local held = math.max(have, math.min(tonumber(ARGV[3]), room))
if held > have then
  redis.call('HINCRBY', KEYS[2], id, held - have)
  redis.call('INCRBY', KEYS[3], held - have)
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[5]), id)
return {held, stored, others}`;

/** ARGV: id, ttl ms. Only a reservation still held is renewed. */
const RENEW = `${LUA_PRELUDE}
redis.call('ZADD', KEYS[1], 'XX', now_ms() + tonumber(ARGV[2]), ARGV[1])`;

/** ARGV: id. */
const RELEASE = `${LUA_PRELUDE}
release(ARGV[1])`;

/** ARGV: id, digest, size, tenant: the reservation becomes the blob's charge. */
const SETTLE = `${LUA_PRELUDE}
release(ARGV[1])
charge(ARGV[2], ARGV[3], ARGV[4])`;

/** ARGV: quota, tenant, then digest and size pairs. → {bytes newly charged or -1, stored, reserved}. */
const CHARGE_STORED = `${LUA_PRELUDE}
drop_expired(now_ms())
local stored, reserved = number_at(KEYS[5]), number_at(KEYS[3])
local adding, seen = 0, {}
for i = 3, #ARGV, 2 do
  if not seen[ARGV[i]] and redis.call('SISMEMBER', KEYS[4], ARGV[i]) == 0 then adding = adding + tonumber(ARGV[i + 1]) end
  seen[ARGV[i]] = true
end
if adding > 0 and stored + reserved + adding > tonumber(ARGV[1]) then return {-1, stored, reserved} end
for i = 3, #ARGV, 2 do charge(ARGV[i], ARGV[i + 1], ARGV[2]) end
return {adding, stored, reserved}`;

/** → {stored, reserved}. */
const USAGE = `${LUA_PRELUDE}
drop_expired(now_ms())
return {number_at(KEYS[5]), number_at(KEYS[3])}`;

/**
 * Each tenant's storage quota, kept in Redis for every API and worker process alike. A write
 * reserves bytes before they are stored (atomically against quota − charged − reserved, so
 * concurrent writes of one tenant cannot all see the same room), then settles: the
 * reservation is released and the blob charged to the tenant, once however many times it is
 * stored or referenced. Reservations expire unless renewed, so a writer that died frees its
 * tenant's room after the TTL.
 */
export class TenantQuota {
  private readonly owners: BlobOwners;

  constructor(
    private readonly redis: Redis,
    readonly settings: QuotaSettings,
  ) {
    this.owners = new BlobOwners(redis);
  }

  private keys(tenant: string): string[] {
    const prefix = `baler:tenant:${tenant}:`;
    const { blobs, bytes } = tenantBlobKeys(tenant);
    return [`${prefix}reservation-deadlines`, `${prefix}reservations`, `${prefix}reserved-bytes`, blobs, bytes];
  }

  private run(script: string, tenant: string, ...args: Array<string | number>): Promise<unknown> {
    return this.redis.eval(script, 5, ...this.keys(tenant), ...args.map(String));
  }

  /**
   * Holds at least `need` bytes in all for the write `id` (more, up to `want`, when there is
   * room), and renews it. Resolves with the bytes held; QuotaExceededError when `need` does
   * not fit.
   */
  async reserve(tenant: string, id: string, need: number, want: number): Promise<number> {
    const [held, stored, others] = (await this.run(RESERVE, tenant, id, need, want, this.settings.maxStoredBytes, this.settings.reservationTtlMs)) as number[];
    if (held === undefined || held < 0) throw new QuotaExceededError(this.settings.maxStoredBytes, stored ?? 0, others ?? 0);
    return held;
  }

  /** The write `id` is still going: its reservation lives another TTL. */
  async renew(tenant: string, id: string): Promise<void> {
    await this.run(RENEW, tenant, id, this.settings.reservationTtlMs);
  }

  /** The write `id` failed: what it held is free again. */
  async release(tenant: string, id: string): Promise<void> {
    await this.run(RELEASE, tenant, id);
  }

  /** The write `id` stored `blob`: its reservation goes, and the blob is charged (once). */
  async settle(tenant: string, id: string, blob: BlobInfo): Promise<void> {
    await this.run(SETTLE, tenant, id, blob.digest, blob.size, tenant);
  }

  /**
   * Charges blobs already in the store (a cache hit references them): those not charged to
   * the tenant yet, all or none. QuotaExceededError when they do not fit.
   */
  async chargeStored(tenant: string, blobs: readonly BlobInfo[]): Promise<void> {
    const pairs = blobs.flatMap((b) => [b.digest, b.size]);
    const [added, stored, reserved] = (await this.run(CHARGE_STORED, tenant, this.settings.maxStoredBytes, tenant, ...pairs)) as number[];
    if (added === undefined || added < 0) throw new QuotaExceededError(this.settings.maxStoredBytes, stored ?? 0, reserved ?? 0);
  }

  /** Whether `digest` is charged to the tenant already (storing it again costs nothing). */
  references(tenant: string, digest: Digest): Promise<boolean> {
    return this.owners.owns(tenant, digest);
  }

  /** Bytes charged to the tenant, and held by its writes in progress. */
  async usage(tenant: string): Promise<{ stored: number; reserved: number }> {
    const [stored, reserved] = (await this.run(USAGE, tenant)) as number[];
    return { stored: stored ?? 0, reserved: reserved ?? 0 };
  }
}
