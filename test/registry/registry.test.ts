/**
 * Push and pull against a real registry: Debian's docker-registry (distribution 2.8) on
 * 127.0.0.1, without and with htpasswd basic auth; checked with skopeo. No other host is
 * contacted.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalJson } from '../../src/image/canonical-json.ts';
import { writeImage } from '../../src/image/sinks/write-image.ts';
import type { Digest } from '../../src/digest.ts';
import { RegistryClient } from '../../src/registry/client.ts';
import { MEDIA_TYPES } from '../../src/registry/manifest.ts';
import { pullImage } from '../../src/registry/pull.ts';
import { pushImage } from '../../src/registry/push.ts';
import { RegistryError, type Registries } from '../../src/registry/registries.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';
import type { BlobStore } from '../../src/store/blob-store.ts';
import { run } from '../support/run.ts';
import { makeInputs, makeTestImage, saveOutput, type Inputs, type TestImage } from '../image/sinks/fixture.ts';
import { countingFetch, startRegistry, type TestRegistry } from './registry-server.ts';

let inputs: Inputs;
let t: TestImage;
let plain: TestRegistry;
let authed: TestRegistry;
let registries: Registries;
const CHUNK = 256 * 1024; // small, so the busybox layer goes up in PATCH chunks
const AUTH = { username: 'baler', password: 's3cret-pw' };

beforeAll(async () => {
  inputs = await makeInputs();
  [t, plain, authed] = await Promise.all([makeTestImage(inputs, join(inputs.dir, 'store')), startRegistry(), startRegistry({ auth: AUTH })]);
  registries = new Map([
    [plain.host, { insecure: true }],
    [authed.host, { insecure: true, ...AUTH }],
  ]);
});

afterAll(async () => {
  await plain?.stop();
  await authed?.stop();
  if (inputs) await rm(inputs.dir, { recursive: true, force: true });
});

const diffIdsOf = (config: string): Digest[] => (JSON.parse(config) as { rootfs: { diff_ids: Digest[] } }).rootfs.diff_ids;

async function sha256Of(store: BlobStore, digest: Digest): Promise<Digest> {
  const hash = createHash('sha256');
  for await (const chunk of (await store.open(digest)) as AsyncIterable<Buffer>) hash.update(chunk);
  return `sha256:${hash.digest('hex')}`;
}

async function skopeoDigest(ref: string, creds?: string): Promise<string> {
  const res = await run('skopeo', ['inspect', '--tls-verify=false', ...(creds ? ['--creds', creds] : []), `docker://${ref}`], { timeoutMs: 30_000 });
  if (res.code !== 0) throw new Error(`skopeo inspect: ${res.stderr}`);
  return (JSON.parse(res.stdout) as { Digest: string }).Digest;
}

async function freshStore(): Promise<FsBlobStore> {
  return FsBlobStore.create(await mkdtemp(join(inputs.dir, 'pull-')));
}

const uploads = (requests: Array<{ method: string; path: string }>) => requests.filter((r) => r.path.includes('/blobs/uploads/'));

describe('registry without auth', () => {
  let pushed: Digest;

  it('pushes an image skopeo then inspects at the returned digest, uploading layers in chunks', async () => {
    const counter = countingFetch();
    const result = await pushImage(t.store, t.image, `${plain.host}/baler/app:1.0`, { registries, chunkSize: CHUNK, fetch: counter.fetch });
    pushed = result.manifestDigest;
    expect(result.blobs.every((b) => b.action === 'uploaded')).toBe(true);
    expect(result.blobs).toHaveLength(t.image.layers.length + 1);
    expect(counter.requests.some((r) => r.method === 'PATCH')).toBe(true);
    expect(await skopeoDigest(`${plain.host}/baler/app:1.0`)).toBe(pushed);
    const config = await run('skopeo', ['inspect', '--config', '--raw', '--tls-verify=false', `docker://${plain.host}/baler/app:1.0`]);
    expect(config.stdout.trim()).toBe(t.image.config);
  });

  it('a second push uploads no blob', async () => {
    const counter = countingFetch();
    const result = await pushImage(t.store, t.image, `${plain.host}/baler/app:1.0`, { registries, chunkSize: CHUNK, fetch: counter.fetch });
    expect(result.manifestDigest).toBe(pushed);
    expect(result.blobs.every((b) => b.action === 'existed')).toBe(true);
    expect(uploads(counter.requests)).toEqual([]);
    expect(counter.requests.filter((r) => r.method === 'PATCH' || (r.method === 'PUT' && r.path.includes('/blobs/')))).toEqual([]);
  });

  it('a push to another repository of the same registry mounts the blobs', async () => {
    const counter = countingFetch();
    const result = await pushImage(t.store, t.image, `${plain.host}/other/app:2`, { registries, chunkSize: CHUNK, fetch: counter.fetch });
    expect(result.manifestDigest).toBe(pushed);
    expect(result.blobs.map((b) => b.action)).toEqual(result.blobs.map(() => 'mounted'));
    expect(counter.requests.filter((r) => r.method === 'PATCH')).toEqual([]);
    expect(await skopeoDigest(`${plain.host}/other/app:2`)).toBe(pushed);
  });

  it('pulls it back: same config, diff_ids, layers stored uncompressed that re-hash to them; then from the cache', async () => {
    const store = await freshStore();
    const counter = countingFetch();
    const image = await pullImage(store, `${plain.host}/baler/app:1.0`, { registries, fetch: counter.fetch });
    expect(image.cached).toBe(false);
    expect(image.manifestDigest).toBe(pushed);
    expect(image.imageId).toBe(t.image.imageId);
    expect(image.layers.map((l) => l.diffId)).toEqual(diffIdsOf(t.image.config));
    for (const layer of image.layers) {
      expect(await sha256Of(store, layer.diffId)).toBe(layer.diffId);
      expect((await store.stat(layer.diffId))?.size).toBe(layer.size);
    }
    // The tarsums are the ones the build computed for the same layers (the top layer's the
    // fixture faked).
    expect(image.layers.slice(0, 2).map((l) => l.tarsum)).toEqual(t.image.legacyJson.slice(0, 2).map((json) => JSON.parse(json).checksum));
    expect(await sha256Of(store, image.imageId)).toBe(image.imageId);

    const again = countingFetch();
    const second = await pullImage(store, `${plain.host}/baler/app:1.0`, { registries, fetch: again.fetch });
    expect(second.cached).toBe(true);
    expect(second.layers).toEqual(image.layers);
    expect(again.requests.map((r) => `${r.method} ${r.path}`)).toEqual(['GET /v2/baler/app/manifests/1.0']);

    const byDigest = countingFetch();
    const third = await pullImage(store, `${plain.host}/baler/app@${pushed}`, { registries, fetch: byDigest.fetch });
    expect(third.imageId).toBe(image.imageId);
    expect(byDigest.requests).toEqual([]);
  });

  let skopeoManifest: Digest;
  it('pulls an image skopeo pushed (from a docker-archive)', async () => {
    const archive = join(inputs.dir, 'seed.tar');
    await saveOutput(await writeImage('docker-archive', t.image, { name: 'baler-test/seed', tag: '1', store: t.store, compression: 'none' }), archive);
    const copy = await run('skopeo', ['copy', '--dest-tls-verify=false', `docker-archive:${archive}`, `docker://${plain.host}/skopeo/seed:1`], { timeoutMs: 60_000 });
    expect(copy.stderr).toBe('');
    expect(copy.code).toBe(0);
    skopeoManifest = (await skopeoDigest(`${plain.host}/skopeo/seed:1`)) as Digest;

    const store = await freshStore();
    const image = await pullImage(store, `${plain.host}/skopeo/seed:1`, { registries });
    expect(image.manifestDigest).toBe(skopeoManifest);
    // skopeo gzip'd the layers on the way: what was pulled was decompressed and verified.
    const manifest = await new RegistryClient(plain.host, { insecure: true }).getManifest('skopeo/seed', '1');
    for (const [i, layer] of (manifest.image?.layers ?? []).entries()) {
      expect(layer.mediaType).toMatch(/gzip/);
      expect(layer.digest).not.toBe(image.layers[i]?.diffId);
    }
    expect(image.layers.map((l) => l.diffId)).toEqual(diffIdsOf(t.image.config));
    for (const layer of image.layers) expect(await sha256Of(store, layer.diffId)).toBe(layer.diffId);
  });

  it('resolves an OCI index and a Docker manifest list to the architecture asked', async () => {
    // The manifests an index names must be in its repository: ours by a (mounting) push, the
    // skopeo-pushed one by a registry-to-registry skopeo copy.
    await pushImage(t.store, t.image, `${plain.host}/multi/app:amd`, { registries });
    const copy = await run('skopeo', ['copy', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${plain.host}/skopeo/seed:1`, `docker://${plain.host}/multi/app:arm`], {
      timeoutMs: 60_000,
    });
    expect(copy.code).toBe(0);
    const client = new RegistryClient(plain.host, { insecure: true });
    const ours = await client.getManifest('multi/app', 'amd');
    const theirs = await client.getManifest('multi/app', 'arm');
    for (const [mediaType, tag] of [
      [MEDIA_TYPES.ociIndex, 'oci'],
      [MEDIA_TYPES.dockerList, 'list'],
    ] as const) {
      const index = canonicalJson({
        schemaVersion: 2,
        mediaType,
        manifests: [
          { mediaType: ours.mediaType, digest: ours.digest, size: ours.bytes.length, platform: { architecture: 'amd64', os: 'linux' } },
          { mediaType: theirs.mediaType, digest: theirs.digest, size: theirs.bytes.length, platform: { architecture: 'arm64', os: 'linux', variant: 'v8' } },
        ],
      });
      await client.putManifest('multi/app', tag, Buffer.from(index), mediaType);
      const store = await freshStore();
      const arm = await pullImage(store, `${plain.host}/multi/app:${tag}`, { registries, architecture: 'arm64' });
      expect(arm.manifestDigest).toBe(theirs.digest);
      const amd = await pullImage(store, `${plain.host}/multi/app:${tag}`, { registries });
      expect(amd.manifestDigest).toBe(ours.digest);
      const err = await pullImage(store, `${plain.host}/multi/app:${tag}`, { registries, architecture: 's390x' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RegistryError);
      expect((err as RegistryError).kind).toBe('platform');
      expect((err as Error).message).toMatch(/no linux\/s390x image; it has: linux\/amd64, linux\/arm64\/v8$/);
    }
  });

  it('refuses an image reached without an index whose config states another platform: before any layer, and from the cache', async () => {
    const ref = `${plain.host}/baler/app:1.0`;
    const store = await freshStore();
    const counter = countingFetch();
    const err = await pullImage(store, ref, { registries, architecture: 'arm64', fetch: counter.fetch }).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'RegistryError', kind: 'platform', message: `${ref} has no linux/arm64 image; it has: linux/amd64` });
    // The manifest and the config, no layer.
    expect(counter.requests.filter((r) => r.path.includes('/blobs/'))).toHaveLength(1);

    const amd = await pullImage(store, ref, { registries });
    expect(amd.cached).toBe(false);
    await expect(pullImage(store, ref, { registries, architecture: 'arm64' })).rejects.toThrow(`${ref} has no linux/arm64 image; it has: linux/amd64`);
    const byDigest = `${plain.host}/baler/app@${amd.manifestDigest}`;
    await expect(pullImage(store, byDigest, { registries, architecture: 'arm64' })).rejects.toThrow(`${byDigest} has no linux/arm64 image; it has: linux/amd64`);
    expect(await pullImage(store, byDigest, { registries, architecture: 'amd64' })).toMatchObject({ cached: true, imageId: amd.imageId });
  });

  it('refuses a host the operator did not list, without contacting it', async () => {
    const counter = countingFetch();
    const err = await pullImage(t.store, '127.0.0.1:1/x/y:1', { registries, fetch: counter.fetch }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as RegistryError).kind).toBe('not-allowed');
    expect((err as Error).message).toMatch(/registry '127\.0\.0\.1:1' is not allowed/);
    await expect(pushImage(t.store, t.image, 'example.com/x:1', { registries, fetch: counter.fetch })).rejects.toThrow(/not allowed/);
    expect(counter.requests).toEqual([]);
  });

  it('a blob the registry corrupted fails the pull and is not stored (last: it damages the storage)', async () => {
    const client = new RegistryClient(plain.host, { insecure: true });
    const manifest = await client.getManifest('baler/app', '1.0');
    const top = manifest.image?.layers.at(-1);
    if (!top) throw new Error('no layers');
    const hex = top.digest.slice('sha256:'.length);
    const path = join(plain.dir, 'data/docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
    const bytes = await readFile(path);
    const at = bytes.length - 20;
    bytes[at] = (bytes[at] ?? 0) ^ 0xff;
    await writeFile(path, bytes);
    const store = await freshStore();
    const err = await pullImage(store, `${plain.host}/baler/app:1.0`, { registries }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as RegistryError).kind).toBe('invalid');
    expect((err as Error).message).toMatch(/does not match its digest|not valid gzip data|does not match its diff_id/);
    expect(await store.stat(diffIdsOf(t.image.config).at(-1) as Digest)).toBeNull();
  });

  it('a missing tag is a not-found RegistryError', async () => {
    await expect(pullImage(t.store, `${plain.host}/baler/app:nope`, { registries })).rejects.toMatchObject({ name: 'RegistryError', kind: 'not-found' });
  });
});

describe('registry with basic auth', () => {
  it('pushes and pulls with the configured credentials; skopeo sees the digest', async () => {
    const result = await pushImage(t.store, t.image, `${authed.host}/private/app:1`, { registries, chunkSize: CHUNK });
    expect(await skopeoDigest(`${authed.host}/private/app:1`, `${AUTH.username}:${AUTH.password}`)).toBe(result.manifestDigest);
    const store = await freshStore();
    const image = await pullImage(store, `${authed.host}/private/app:1`, { registries });
    expect(image.layers.map((l) => l.diffId)).toEqual(diffIdsOf(t.image.config));
  });

  it('wrong or missing credentials are clear auth errors', async () => {
    const wrong = new Map([[authed.host, { insecure: true, username: AUTH.username, password: 'wrong' }]]);
    const err = await pullImage(t.store, `${authed.host}/private/app:1`, { registries: wrong }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as RegistryError).kind).toBe('auth');
    expect((err as Error).message).toBe(`registry ${authed.host} rejected the configured credentials (user 'baler')`);
    await expect(pushImage(t.store, t.image, `${authed.host}/private/app:2`, { registries: wrong })).rejects.toThrow(/rejected the configured credentials/);

    const none = new Map([[authed.host, { insecure: true }]]);
    await expect(pullImage(t.store, `${authed.host}/private/app:1`, { registries: none })).rejects.toThrow(
      `registry ${authed.host} requires authentication, and no credentials are configured for it in the registries file`,
    );
  });
});
