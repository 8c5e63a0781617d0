/**
 * Issue 6 through the API: the build cache (a resubmitted spec is `succeeded` at once), the
 * layer cache across specs (a VM step is not run again), `?noCache=true`, and storage: many
 * builds on one base store its layers once, whatever the download format.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readdir, stat, writeFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startService, submitBuild, uploadFile, waitForBuild, type BuildView, type Service } from '../support/service.ts';

let service: Service;
let work: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'baler-cache-e2e-'));
  service = await startService();
}, 60_000);
afterAll(async () => {
  await service?.stop();
  await rm(work, { recursive: true, force: true });
});

async function submit(spec: unknown, query = ''): Promise<{ status: number; body: { id: string; status: string; cached?: boolean; cachedFrom?: string } }> {
  const res = await fetch(`${service.url}/v1/builds${query}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(spec) });
  return { status: res.status, body: (await res.json()) as { id: string; status: string; cached?: boolean; cachedFrom?: string } };
}
const getBuild = async (id: string) => (await (await fetch(`${service.url}/v1/builds/${id}`)).json()) as BuildView & { cached?: boolean; result: { layers: unknown[] } };
const logOf = async (id: string) => (await fetch(`${service.url}/v1/builds/${id}/logs`)).text();
const sha256 = (b: ArrayBuffer) => createHash('sha256').update(Buffer.from(b)).digest('hex');
const download = async (id: string, query = '') => {
  const res = await fetch(`${service.url}/v1/builds/${id}/image${query}`);
  expect(res.status).toBe(200);
  return res.arrayBuffer();
};

describe('the build cache', () => {
  const spec = { name: 'cache/pure', contents: [{ text: 'hello\n', to: '/etc/hello' }], config: { Env: ['A=1'] } };

  it('answers an identical spec with a succeeded build at once; noCache builds again to the same bytes', async () => {
    const first = await submit(spec);
    expect(first.status).toBe(202);
    const built = await waitForBuild(service, first.body.id);
    expect(built.status).toBe('succeeded');

    const again = await submit(spec);
    expect(again.status).toBe(201);
    expect(again.body).toEqual({ id: expect.any(String), status: 'succeeded', cached: true, cachedFrom: first.body.id });
    expect(again.body.id).not.toBe(first.body.id);
    const cached = await getBuild(again.body.id);
    expect(cached.status).toBe('succeeded');
    expect(cached).toMatchObject({ cached: true, cachedFrom: first.body.id });
    // The same image and SBOMs; its provenance is its own (naming the original's: test/e2e/attestations.test.ts).
    const withoutProvenance = (r: unknown) => {
      const { attestations, ...rest } = r as { attestations: { provenance: string } };
      return { ...rest, attestations: { ...attestations, provenance: undefined } };
    };
    expect(withoutProvenance(cached.result)).toEqual(withoutProvenance(built.result));
    expect(await logOf(again.body.id)).toContain(`identical to build ${first.body.id}`);
    expect(sha256(await download(again.body.id))).toBe(sha256(await download(first.body.id)));

    const rebuilt = await submit(spec, '?noCache=true');
    expect(rebuilt.status).toBe(202);
    const done = await waitForBuild(service, rebuilt.body.id);
    expect(done.status).toBe('succeeded');
    expect(done.cachedFrom).toBeUndefined();
    expect(done.result?.archive.digest).toBe(built.result?.archive.digest);
  }, 60_000);

  it('misses when anything that goes into the image changes', async () => {
    for (const changed of [{ tag: 'other' }, { contents: [{ text: 'hello!\n', to: '/etc/hello' }] }, { config: { Env: ['A=2'] } }, { compression: 'none' }]) {
      const res = await submit({ ...spec, ...changed });
      expect(res.status, JSON.stringify(changed)).toBe(202);
      expect((await waitForBuild(service, res.body.id)).status).toBe('succeeded');
    }
    // Priority only orders the queue: still a hit.
    expect((await submit({ ...spec, priority: 7 })).status).toBe(201);
  }, 60_000);

  it('rejects a noCache that is not a boolean', async () => {
    const res = await fetch(`${service.url}/v1/builds?noCache=yes`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(spec) });
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  });

  it('caches builds on an earlier build as well', async () => {
    const base = await waitForBuild(service, await submitBuild(service, { name: 'cache/base', contents: [{ text: 'b1', to: '/b' }] }));
    const child = { name: 'cache/child', fromImage: { build: base.id }, contents: [{ text: 'c', to: '/c' }] };
    const first = await submit(child);
    expect(first.status).toBe(202);
    // The cache answers once the first child build has succeeded (not on a timer: a loaded CI
    // machine can take longer than any fixed wait).
    const built = await waitForBuild(service, first.body.id);
    expect(built.status, JSON.stringify(built.error)).toBe('succeeded');
    const hit = await submit(child);
    expect(hit.status).toBe(201);
  }, 60_000);
});

describe('the layer cache across specs', () => {
  it('does not run a VM step again for another image with the same inputs and scripts', async () => {
    const spec = { name: 'cache/vm', contents: [{ text: 'in', to: '/in' }], runAsRoot: 'echo vm-step-ran; cat /in > /out' };
    const first = await waitForBuild(service, await submitBuild(service, spec));
    expect(first.status, JSON.stringify(first.error)).toBe('succeeded');
    expect(await logOf(first.id)).toContain('vm-step-ran');

    // Another tag: another image (the build cache misses), the same layer.
    const second = await waitForBuild(service, await submitBuild(service, { ...spec, tag: 'two' }));
    expect(second.status).toBe('succeeded');
    expect(second.cachedFrom).toBeUndefined();
    expect(second.result?.diffIds).toEqual(first.result?.diffIds);
    expect(await logOf(second.id)).not.toContain('vm-step-ran');

    const forced = await waitForBuild(service, await submitBuild(service, { ...spec, tag: 'three' }, { noCache: true }));
    expect(forced.status).toBe('succeeded');
    expect(await logOf(forced.id)).toContain('vm-step-ran');
    expect(forced.result?.diffIds).toEqual(first.result?.diffIds);
  }, 180_000);
});

async function storeBytes(): Promise<number> {
  const dir = join(service.dataDir, 'store', 'blobs', 'sha256');
  let total = 0;
  for (const name of await readdir(dir)) total += (await stat(join(dir, name))).size;
  return total;
}

describe('storage', () => {
  it('N builds on one base, downloaded in every format, store the base once', async () => {
    const BASE_BYTES = 8 * 1024 * 1024;
    const N = 8;
    const file = join(work, 'base.bin');
    await writeFile(file, randomBytes(BASE_BYTES));
    const blob = await uploadFile(service, file);
    const base = await waitForBuild(service, await submitBuild(service, { name: 'store/base', contents: [{ file: blob, to: '/base.bin' }] }));
    expect(base.status).toBe('succeeded');
    const baseStored = await storeBytes();

    let afterFirst = 0;
    for (let i = 0; i < N; i++) {
      const child = await waitForBuild(service, await submitBuild(service, { name: 'store/child', tag: `t${i}`, fromImage: { build: base.id }, contents: [{ text: `child ${i}`, to: '/child' }] }));
      expect(child.status).toBe('succeeded');
      // The build's own archive (gzip) and the other forms, each assembled on download.
      for (const query of ['', '?compression=none', '?format=oci-archive', '?format=docker-archive-oci']) expect((await download(child.id, query)).byteLength).toBeGreaterThan(BASE_BYTES);
      if (i === 0) afterFirst = await storeBytes();
    }
    const perChild = ((await storeBytes()) - afterFirst) / (N - 1);
    const first = afterFirst - baseStored;
    console.log(
      `storage: ${N} builds on an ${BASE_BYTES / 2 ** 20} MiB base, 4 downloads each: the first added ${(first / 2 ** 20).toFixed(2)} MiB (the base's gzip'd OCI layer, made once), each further one ${(perChild / 1024).toFixed(1)} KiB`,
    );
    // The base layer is stored uncompressed once, as a deflate piece once (its build's gzip
    // archive) and gzip'd once (for the OCI forms): nothing of it per child.
    expect(first).toBeLessThan(BASE_BYTES * 1.1);
    expect(perChild).toBeLessThan(64 * 1024);
  }, 300_000);
});
