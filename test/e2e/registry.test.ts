/**
 * Registry pull and push through the API, against Debian's docker-registry (distribution 2.8)
 * on 127.0.0.1 with basic auth, checked with skopeo.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startRegistry, type TestRegistry } from '../registry/registry-server.ts';
import { busyboxTar } from '../support/images.ts';
import { run } from '../support/run.ts';
import { startService, submitBuild, uploadFile, waitForBuild, type BuildView, type Service } from '../support/service.ts';
import { until } from '../support/wait.ts';

let registry: TestRegistry;
let service: Service;
let dir: string;
const auth = { username: 'baler', password: 'secret-pass' };

beforeAll(async () => {
  registry = await startRegistry({ auth });
  dir = await mkdtemp(join(tmpdir(), 'baler-registry-e2e-'));
  const registries = join(dir, 'registries.json');
  await writeFile(registries, JSON.stringify({ [registry.host]: { insecure: true, ...auth } }));
  service = await startService({ BALER_REGISTRIES_FILE: registries });
}, 60_000);

afterAll(async () => {
  await service?.stop();
  await registry?.stop();
  await rm(dir, { recursive: true, force: true });
});

type WithPushes = BuildView & { pushes?: Record<string, { status: string; manifestDigest?: string; uploadedBlobs?: number; error?: string }> };
const getBuild = async (id: string) => (await (await fetch(`${service.url}/v1/builds/${id}`)).json()) as WithPushes;
const push = (id: string, ref: string) => fetch(`${service.url}/v1/builds/${id}/push`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ref }) });

async function pushed(id: string, ref: string) {
  expect((await push(id, ref)).status).toBe(202);
  await until(async () => ['succeeded', 'failed'].includes((await getBuild(id)).pushes?.[ref]?.status ?? ''), 60_000);
  return (await getBuild(id)).pushes?.[ref];
}

it('pushes a build to the registry (a second push uploads nothing) and builds FROM it by reference', async () => {
  const base = await waitForBuild(service, await submitBuild(service, { name: 'reg/base', contents: [{ tar: await uploadFile(service, await busyboxTar()) }], config: { Cmd: ['/bin/sh'] } }));
  expect(base.status).toBe('succeeded');
  const ref = `${registry.host}/baler/base:1.0`;

  const first = await pushed(base.id, ref);
  expect(first?.status, first?.error).toBe('succeeded');
  expect(first?.uploadedBlobs).toBeGreaterThan(0);
  const inspect = await run('skopeo', ['inspect', '--tls-verify=false', '--creds', `${auth.username}:${auth.password}`, `docker://${ref}`]);
  expect(inspect.code, inspect.stderr).toBe(0);
  expect((JSON.parse(inspect.stdout) as { Digest: string }).Digest).toBe(first?.manifestDigest);

  const again = await pushed(base.id, ref);
  expect(again).toMatchObject({ status: 'succeeded', uploadedBlobs: 0, manifestDigest: first?.manifestDigest });

  const child = await waitForBuild(service, await submitBuild(service, { name: 'reg/child', fromImage: { ref }, contents: [{ text: 'hi', to: '/hi' }] }));
  expect(child.status, JSON.stringify(child.error)).toBe('succeeded');
  expect(child.result?.diffIds[0]).toBe(base.result?.diffIds[0]);
}, 180_000);

it('refuses registries the operator does not list, and refs it cannot parse, before queueing', async () => {
  const res = await fetch(`${service.url}/v1/builds`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'reg/x', fromImage: { ref: 'elsewhere.example:5000/x:1' } }),
  });
  expect(res.status).toBe(422);
  expect(((await res.json()) as { detail: string }).detail).toMatch(/not allowed/);
  const base = await waitForBuild(service, await submitBuild(service, { name: 'reg/y', contents: [] }));
  expect((await push(base.id, 'elsewhere.example:5000/x:1')).status).toBe(422);
  expect((await push(base.id, `${registry.host}/x@sha256:${'0'.repeat(64)}`)).status).toBe(422);
});
