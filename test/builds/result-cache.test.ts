/**
 * The layer and import caches inside runBuild (no service, no VM): a hit reads no input, a
 * changed input or cache version misses, noCache looks nothing up, a VM step's layer is reused
 * only by the tenant that ran it.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CACHE_VERSION, MemoryResultCache } from '../../src/builds/result-cache.ts';
import type { BuildDeps } from '../../src/builds/build-deps.ts';
import { SILENT_OBSERVER } from '../../src/builds/build-observer.ts';
import { runBuild } from '../../src/builds/run-build.ts';
import { resolveSpec, type BuildSpec } from '../../src/builds/spec.ts';
import { writeLayerTar } from '../../src/image/layer-writer.ts';
import { resolveContents } from '../../src/image/sources/spec-contents.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';
import type { VmRunner } from '../../src/vm/vm-runner.ts';
import { busyboxTar } from '../support/images.ts';

let dir: string;
let store: FsBlobStore;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'baler-cache-'));
  store = await FsBlobStore.create(dir);
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

const put = async (text: string) => (await store.put(Readable.from([Buffer.from(text)]))).digest;

function build(spec: Omit<BuildSpec, 'name'> & { name?: string }, cache: MemoryResultCache, extra: Partial<BuildDeps> = {}) {
  const steps: string[] = [];
  const result = runBuild(resolveSpec({ name: 'cache/test', compression: 'none', ...spec }, new Date(0)), {
    store,
    allowDevices: false,
    vm: { run: () => Promise.reject(new Error('no VM here')) },
    loadBuildImage: () => Promise.reject(new Error('no base builds here')),
    cache,
    observer: {
      ...SILENT_OBSERVER,
      stepStarted: (name) => (steps.push(name), () => {}),
      stepCached: (name) => void steps.push(`${name} cached`),
    },
    ...extra,
    tenant: extra.tenant ?? 'alpha',
  });
  return { result, steps };
}

describe('the layer cache', () => {
  it('reuses a layer without reading its inputs; a changed input misses', async () => {
    const cache = new MemoryResultCache();
    const input = await put('input to be deleted after the first build');
    const first = await build({ contents: [{ file: input, to: '/f', mode: '0644' }] }, cache).result;
    await store.delete(input);

    // Another name (so another image), the same contents: the layer comes from the cache.
    const second = build({ name: 'cache/other', contents: [{ file: input, to: '/f', mode: '0644' }] }, cache);
    expect((await second.result).diffIds).toEqual(first.diffIds);
    expect(second.steps).toContain('contents cached');
    expect(second.steps).not.toContain('layer');

    // Any change of what makes the layer misses, and then needs the (deleted) input.
    for (const changed of [{ to: '/g' }, { mode: '0600' }]) {
      await expect(build({ contents: [{ file: input, to: '/f', mode: '0644', ...changed }] }, cache).result).rejects.toThrow(/not found/);
    }
    await expect(build({ uid: 5, contents: [{ file: input, to: '/f', mode: '0644' }] }, cache).result).rejects.toThrow(/not found/);
    await expect(build({ created: '2020-01-01T00:00:00Z', contents: [{ file: input, to: '/f', mode: '0644' }] }, cache).result).rejects.toThrow(/not found/);
  });

  it('looks nothing up with noCache, but records what it built', async () => {
    const cache = new MemoryResultCache();
    const input = await put('noCache input');
    const spec = { contents: [{ file: input, to: '/n' }] };
    await build(spec, cache).result;
    const rebuilt = build(spec, cache, { noCache: true });
    await rebuilt.result;
    expect(rebuilt.steps).toContain('layer');
    expect(rebuilt.steps).not.toContain('contents cached');
    await store.delete(input);
    await expect(build(spec, cache, { noCache: true }).result).rejects.toThrow(/not found/);
    await expect(build(spec, cache).result).resolves.toBeDefined();
  });

  it('never serves an entry made under another cache version', async () => {
    const entries = new Map<string, string>();
    const input = await put('versioned input');
    const spec = { contents: [{ file: input, to: '/v' }] };
    await build(spec, new MemoryResultCache(entries, CACHE_VERSION)).result;
    await store.delete(input);
    await expect(build(spec, new MemoryResultCache(entries, CACHE_VERSION + 1)).result).rejects.toThrow(/not found/);
    await expect(build(spec, new MemoryResultCache(entries, CACHE_VERSION)).result).resolves.toBeDefined();
  });

  it('misses when the cached layer blob is gone from the store', async () => {
    const cache = new MemoryResultCache();
    const input = await put('gc input');
    const spec = { contents: [{ file: input, to: '/gc' }] };
    const first = await build(spec, cache).result;
    await store.delete(first.diffIds[0] as `sha256:${string}`);
    const again = build(spec, cache);
    expect((await again.result).diffIds).toEqual(first.diffIds);
    expect(again.steps).not.toContain('contents cached');
  });
});

describe('the import cache', () => {
  it('verifies and stores a base archive once; later builds on it read nothing of it', async () => {
    const cache = new MemoryResultCache();
    const base = await build({ name: 'cache/base', contents: [{ tar: (await store.put(createReadStream(await busyboxTar()))).digest }] }, cache).result;
    // The base's docker-archive, uploaded as a blob like a `docker save` would be.
    const { imageOutput } = await import('../../src/builds/build-archive.ts');
    const { loadImage } = await import('../../src/image/stored-image.ts');
    const archive = await imageOutput(await loadImage(store, base), { name: 'cache/base', tag: 'latest', created: '1970-01-01T00:00:01Z' }, 'docker-archive', 'none', store);
    const blob = (await store.put(archive.stream)).digest;

    const first = build({ fromImage: { blob }, contents: [{ text: '1', to: '/one' }] }, cache);
    await first.result;
    expect(first.steps).not.toContain('base cached');
    await store.delete(blob);
    const second = build({ fromImage: { blob }, contents: [{ text: '2', to: '/two' }] }, cache);
    expect((await second.result).diffIds.slice(0, -1)).toEqual(base.diffIds);
    expect(second.steps).toContain('base cached');
  });
});

/** A VM whose script writes fresh random bytes to /random at every run, as `head -c 16 /dev/urandom` would. */
function randomScriptVm() {
  let runs = 0;
  const vm: VmRunner = {
    run: async () => {
      runs++;
      const tree = await resolveContents([{ text: randomBytes(16).toString('hex'), to: '/random' }], store, { uid: 0, gid: 0, allowDevices: false });
      const upper = await store.put(writeLayerTar(tree.sortedEntries(), store, 0).stream);
      return { outcome: { ok: true }, openUpperTar: () => store.open(upper.digest), dispose: async () => {} };
    },
  };
  return { vm, runs: () => runs };
}

describe('tenancy of cached layers', () => {
  it("reuses a VM step's layer only for the tenant that ran it", async () => {
    const cache = new MemoryResultCache();
    const { vm, runs } = randomScriptVm();
    const spec = { runAsRoot: 'head -c 16 /dev/urandom > /random' };
    const alpha = await build(spec, cache, { vm, tenant: 'alpha' }).result;
    const alphaAgain = build({ ...spec, name: 'cache/again' }, cache, { vm, tenant: 'alpha' });
    expect((await alphaAgain.result).diffIds).toEqual(alpha.diffIds);
    expect(alphaAgain.steps).toContain('vm cached');
    expect(runs()).toBe(1);

    // Another tenant, the same spec: its own script run, its own random bytes.
    const beta = build(spec, cache, { vm, tenant: 'beta' });
    expect((await beta.result).diffIds).not.toEqual(alpha.diffIds);
    expect(beta.steps).not.toContain('vm cached');
    expect(runs()).toBe(2);
  });

  it('shares a contents layer across tenants: it is made from the blobs alone', async () => {
    const cache = new MemoryResultCache();
    const input = await put('shared contents input');
    const spec = { contents: [{ file: input, to: '/shared' }] };
    const alpha = await build(spec, cache, { tenant: 'alpha' }).result;
    await store.delete(input);
    const beta = build(spec, cache, { tenant: 'beta' });
    expect((await beta.result).diffIds).toEqual(alpha.diffIds);
    expect(beta.steps).toContain('contents cached');
  });
});
