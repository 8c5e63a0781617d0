/**
 * Issue 12, attack 4 (storage amplification) against the real service: every byte stored on
 * a tenant's behalf — uploads racing each other, merges, compressed pieces a download makes,
 * the layers a build writes, the compressed layers a push makes — is charged to it as it
 * streams, and over its quota the request gets 413 (a build fails with 413, a push fails) with
 * nothing half-stored. What a build takes from the layer cache is charged to it too.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { BlobOwners } from '../../src/auth/blob-owners.ts';
import { TenantQuota } from '../../src/auth/tenant-quota.ts';
import type { Digest } from '../../src/digest.ts';
import { connectRedis } from '../../src/redis.ts';
import { startRegistry, type TestRegistry } from '../registry/registry-server.ts';
import { startService, type BuildView, type Service } from '../support/service.ts';
import { until } from '../support/wait.ts';

const MiB = 1024 * 1024;
const QUOTA = 4 * MiB;
const CHUNK = 256 * 1024;
const TENANTS = ['racer', 'streamer', 'merger', 'downloader', 'filled', 'amplifier', 'first', 'second', 'pusher'] as const;
type Tenant = (typeof TENANTS)[number];

let dir: string;
let service: Service;
let registry: TestRegistry;
let redis: Redis;
let usage: TenantQuota;
let owners: BlobOwners;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'baler-quota-e2e-'));
  await writeFile(join(dir, 'tokens'), TENANTS.map((t) => `${t} token-${t}\n`).join(''));
  registry = await startRegistry();
  await writeFile(join(dir, 'registries.json'), JSON.stringify({ [registry.host]: { insecure: true } }));
  service = await startService({
    BALER_TOKENS_FILE: join(dir, 'tokens'),
    BALER_REGISTRIES_FILE: join(dir, 'registries.json'),
    BALER_TENANT_MAX_STORED_BYTES: String(QUOTA),
    BALER_QUOTA_CHUNK_BYTES: String(CHUNK),
    // No step here runs a script: no VM waits warm.
    BALER_VM_POOL: '0',
  });
  redis = connectRedis(service.redisUrl);
  usage = new TenantQuota(redis, { maxStoredBytes: QUOTA, chunkBytes: CHUNK, reservationTtlMs: 60_000 });
  owners = new BlobOwners(redis);
}, 180_000);

afterAll(async () => {
  redis?.disconnect();
  await service?.stop();
  await registry?.stop();
  await rm(dir, { recursive: true, force: true });
});

const call = (tenant: Tenant, path: string, init: RequestInit = {}) =>
  fetch(`${service.url}${path}`, { ...init, headers: { authorization: `Bearer token-${tenant}`, ...(init.headers as Record<string, string> | undefined) } });
const json = (body: unknown): RequestInit => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
const upload = async (tenant: Tenant, bytes: Buffer): Promise<Digest> => {
  const res = await call(tenant, '/v1/blobs', { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: new Uint8Array(bytes) });
  expect([200, 201], await res.clone().text()).toContain(res.status);
  return ((await res.json()) as { digest: Digest }).digest;
};
/** `bytes` as a chunked body (no Content-Length: nothing to refuse it by in advance), 64 KiB at a time. */
const chunked = (bytes: Buffer): RequestInit =>
  ({
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream' },
    body: (async function* () {
      for (let at = 0; at < bytes.length; at += 64 * 1024) {
        yield bytes.subarray(at, at + 64 * 1024);
        await new Promise((r) => setTimeout(r, 1));
      }
    })(),
    duplex: 'half',
  }) as unknown as RequestInit;
async function build(tenant: Tenant, spec: unknown): Promise<BuildView> {
  const submitted = await call(tenant, '/v1/builds', json(spec));
  expect(submitted.status, await submitted.clone().text()).toBe(202);
  const { id } = (await submitted.json()) as { id: string };
  for (const deadline = Date.now() + 120_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 100))) {
    const view = (await (await call(tenant, `/v1/builds/${id}`)).json()) as BuildView;
    if (['succeeded', 'failed', 'cancelled'].includes(view.status)) return view;
  }
  throw new Error(`build ${id} did not finish`);
}
/** The store's blobs and their sizes; nothing waits in its ingest area. */
async function storedBlobs(): Promise<Map<Digest, number>> {
  const blobs = join(service.storeDir, 'blobs', 'sha256');
  const sizes = new Map<Digest, number>();
  for (const name of await readdir(blobs)) sizes.set(`sha256:${name}`, (await stat(join(blobs, name))).size);
  expect(await readdir(join(service.storeDir, 'ingest'))).toEqual([]);
  return sizes;
}
const added = (before: Map<Digest, number>, after: Map<Digest, number>) => [...after].filter(([digest]) => !before.has(digest));
/** Uploads what leaves the tenant `room` bytes of its quota. */
async function fillUpTo(tenant: Tenant, room: number): Promise<void> {
  const { stored } = await usage.usage(tenant);
  await upload(tenant, randomBytes(QUOTA - stored - room));
  expect(await usage.usage(tenant)).toEqual({ stored: QUOTA - room, reserved: 0 });
}
/** A succeeded build of the tenant's with one 512 KiB layer of random bytes, stored uncompressed. */
async function uncompressedBuild(tenant: Tenant): Promise<BuildView> {
  const file = await upload(tenant, randomBytes(512 * 1024));
  const done = await build(tenant, { name: `${tenant}/one`, compression: 'none', contents: [{ file, to: '/x' }] });
  expect(done.status, JSON.stringify(done.error)).toBe('succeeded');
  return done;
}
const expectQuotaProblem = async (res: Response) => {
  expect(res.status).toBe(413);
  expect(res.headers.get('content-type')).toMatch(/problem\+json/);
  expect(((await res.json()) as { detail: string }).detail).toMatch(/quota of 4194304 bytes/);
};

it('parallel uploads of one tenant with a length: exactly those that fit are stored, every other is a 413 and left nothing', async () => {
  const bodies = Array.from({ length: 10 }, () => randomBytes(MiB));
  const before = await storedBlobs();
  const answers = await Promise.all(bodies.map((b) => call('racer', '/v1/blobs', { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: new Uint8Array(b) })));
  // Each declared length is reserved whole before its body is read: four fit, six are refused unread.
  expect(answers.filter((a) => a.status === 201).length).toBe(QUOTA / MiB);
  for (const answer of answers.filter((a) => a.status !== 201)) await expectQuotaProblem(answer);
  expect(await owners.bytesOf('racer')).toBe(QUOTA);
  // Only the accepted bodies are stored; the refused ones left nothing, not even in ingest.
  expect(added(before, await storedBlobs()).length).toBe(QUOTA / MiB);
  expect(await usage.usage('racer')).toEqual({ stored: QUOTA, reserved: 0 });
}, 120_000);

it('parallel uploads of one tenant without a length end within its quota (+ one chunk); the refused ones left nothing', async () => {
  const bodies = Array.from({ length: 10 }, () => randomBytes(MiB));
  const before = await storedBlobs();
  const answers = await Promise.all(bodies.map((b) => call('streamer', '/v1/blobs', chunked(b)).catch((err: Error) => err)));
  let accepted = 0;
  for (const answer of answers) {
    // Refused while its body is still being sent: a 413, or the connection closes first.
    if (!(answer instanceof Response)) continue;
    if (answer.status === 201) accepted++;
    else await expectQuotaProblem(answer);
  }
  expect(accepted).toBeLessThan(bodies.length);
  const charged = await owners.bytesOf('streamer');
  expect(charged).toBe(accepted * MiB);
  expect(charged).toBeLessThanOrEqual(QUOTA + CHUNK);
  expect(added(before, await storedBlobs()).length).toBe(accepted);
  expect(await usage.usage('streamer')).toEqual({ stored: charged, reserved: 0 });
}, 120_000);

it('a merge is charged to its tenant; over the quota it is a 413 and stores nothing', async () => {
  const file = await upload('merger', randomBytes(512 * 1024));
  const ids = [];
  for (const to of ['/a', '/b']) {
    const done = await build('merger', { name: `merger${to}`, compression: 'none', contents: [{ file, to }] });
    expect(done.status, JSON.stringify(done.error)).toBe('succeeded');
    ids.push(done.id);
  }
  // Within the quota: stored, and charged.
  const charged = await owners.bytesOf('merger');
  const merged = await call('merger', '/v1/merges', json({ builds: ids }));
  expect(merged.status).toBe(201);
  const { digest, size } = (await merged.json()) as { digest: Digest; size: number };
  expect(await owners.owns('merger', digest)).toBe(true);
  expect(await owners.bytesOf('merger')).toBe(charged + size);
  // The other order is another archive holding both 512 KiB layers: 64 KiB of room is not enough.
  await fillUpTo('merger', 64 * 1024);
  const before = await storedBlobs();
  await expectQuotaProblem(await call('merger', '/v1/merges', json({ builds: ids.reverse() })));
  expect(added(before, await storedBlobs())).toEqual([]);
  expect(await usage.usage('merger')).toEqual({ stored: QUOTA - 64 * 1024, reserved: 0 });
}, 180_000);

it('a download that makes compressed pieces is charged to its tenant, once', async () => {
  const done = await uncompressedBuild('downloader');
  const charged = await owners.bytesOf('downloader');
  const before = await storedBlobs();
  const res = await call('downloader', `/v1/builds/${done.id}/image?compression=gzip`);
  expect(res.status).toBe(200);
  await res.arrayBuffer();
  const pieces = added(before, await storedBlobs());
  expect(pieces.length).toBeGreaterThan(0);
  for (const [digest] of pieces) expect(await owners.owns('downloader', digest)).toBe(true);
  const piecesBytes = pieces.reduce((sum, [, size]) => sum + size, 0);
  expect(piecesBytes).toBeGreaterThan(512 * 1024); // random bytes do not compress
  expect(await owners.bytesOf('downloader')).toBe(charged + piecesBytes);
  // The pieces are made once: downloading again stores and charges nothing more.
  expect((await call('downloader', `/v1/builds/${done.id}/image?compression=gzip`)).status).toBe(200);
  expect(await owners.bytesOf('downloader')).toBe(charged + piecesBytes);
}, 180_000);

it('a download whose compressed pieces do not fit the quota is a 413 and stores nothing', async () => {
  const done = await uncompressedBuild('filled');
  await fillUpTo('filled', 64 * 1024);
  const before = await storedBlobs();
  await expectQuotaProblem(await call('filled', `/v1/builds/${done.id}/image?compression=gzip`));
  expect(added(before, await storedBlobs())).toEqual([]);
  // The build's own format needs nothing stored: still served.
  const own = await call('filled', `/v1/builds/${done.id}/image`);
  expect(own.status).toBe(200);
  await own.arrayBuffer();
}, 180_000);

it('a build naming one 1 MiB blob 300 times fails with 413 under a 4 MiB quota, and the next build works', async () => {
  const file = await upload('amplifier', randomBytes(MiB));
  const before = await storedBlobs();
  const contents = Array.from({ length: 300 }, (_, i) => ({ file, to: `/copy-${i}` }));
  const started = Date.now();
  const amplified = await build('amplifier', { name: 'amplifier/bomb', compression: 'none', contents });
  expect(amplified.status).toBe('failed');
  expect(amplified.error?.status).toBe(413);
  expect(amplified.error?.detail).toMatch(/quota of 4194304 bytes/);
  const charged = await owners.bytesOf('amplifier');
  expect(charged).toBeLessThanOrEqual(QUOTA + CHUNK);
  // Nothing larger than the quota landed in the store (the 300 MiB layer was discarded).
  for (const [, size] of added(before, await storedBlobs())) expect(size).toBeLessThanOrEqual(QUOTA);
  expect(await usage.usage('amplifier')).toEqual({ stored: charged, reserved: 0 });
  const normal = await build('amplifier', { name: 'amplifier/normal', contents: [{ text: 'fine\n', to: '/fine' }] });
  expect(normal.status, JSON.stringify(normal.error)).toBe('succeeded');
  expect(Date.now() - started).toBeLessThan(120_000);
  expect(service.output()).not.toContain('worker exited');
}, 180_000);

it('layers a build takes from the layer cache are charged to its tenant too', async () => {
  const bytes = randomBytes(256 * 1024);
  const contents = async (tenant: Tenant) => [{ file: await upload(tenant, bytes), to: '/shared' }];
  const made = await build('first', { name: 'first/one', compression: 'none', contents: await contents('first') });
  expect(made.status, JSON.stringify(made.error)).toBe('succeeded');
  // Another name: not the same build, but the same layer, from the cache.
  const reused = await build('second', { name: 'second/one', compression: 'none', contents: await contents('second') });
  expect(reused.status, JSON.stringify(reused.error)).toBe('succeeded');
  expect(reused.result?.diffIds).toEqual(made.result?.diffIds);
  expect(service.output()).toMatch(/"step":"contents","phase":"cached"/);
  for (const digest of [reused.result?.imageId, ...(reused.result?.diffIds ?? [])]) expect(await owners.owns('second', digest as Digest)).toBe(true);
  expect(await owners.bytesOf('second')).toBe(await owners.bytesOf('first'));
}, 180_000);

it('a push whose compressed layers do not fit the quota fails, naming it, and stores nothing', async () => {
  const done = await uncompressedBuild('pusher');
  await fillUpTo('pusher', 64 * 1024);
  const before = await storedBlobs();
  const ref = `${registry.host}/pusher/one:1`;
  expect((await call('pusher', `/v1/builds/${done.id}/push`, json({ ref }))).status).toBe(202);
  type Pushes = { pushes?: Record<string, { status: string; error?: string }> };
  const pushOf = async () => ((await (await call('pusher', `/v1/builds/${done.id}`)).json()) as Pushes).pushes?.[ref];
  await until(async () => ['succeeded', 'failed'].includes((await pushOf())?.status ?? ''), 60_000);
  expect(await pushOf()).toMatchObject({ status: 'failed', error: expect.stringMatching(/quota of 4194304 bytes/) });
  expect(added(before, await storedBlobs())).toEqual([]);
  expect(await usage.usage('pusher')).toEqual({ stored: QUOTA - 64 * 1024, reserved: 0 });
}, 180_000);
