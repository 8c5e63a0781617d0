/** mergeImages through the API: one archive, every tag loadable by one `docker load`. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startDockerd, type Dockerd } from '../support/dockerd.ts';
import { busyboxTar } from '../support/images.ts';
import { startService, submitBuild, uploadFile, waitForBuild, type Service } from '../support/service.ts';

let service: Service;
let dockerd: Dockerd;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'baler-merge-'));
  [service, dockerd] = await Promise.all([startService(), startDockerd()]);
}, 90_000);

afterAll(async () => {
  await Promise.all([service?.stop(), dockerd?.stop()]);
  await rm(dir, { recursive: true, force: true });
});

it('merges two builds sharing a base layer into one archive that docker loads whole', async () => {
  const busybox = await uploadFile(service, await busyboxTar());
  const base = await waitForBuild(service, await submitBuild(service, { name: 'merge/base', contents: [{ tar: busybox }] }));
  const ids = [];
  for (const [name, word] of [
    ['merge/one', 'first'],
    ['merge/two', 'second'],
  ] as const) {
    const build = await waitForBuild(
      service,
      await submitBuild(service, { name, fromImage: { build: base.id }, contents: [{ text: word, to: '/word' }], config: { Cmd: ['/bin/sh', '-c', 'cat /word'] } }),
    );
    expect(build.status).toBe('succeeded');
    ids.push(build.id);
  }
  const res = await fetch(`${service.url}/v1/merges`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ builds: ids }) });
  expect(res.status).toBe(201);
  const { digest } = (await res.json()) as { digest: string };
  const archive = join(dir, 'merged.tar');
  await writeFile(archive, Buffer.from(await (await fetch(`${service.url}${res.headers.get('location')}`)).arrayBuffer()));

  const load = await dockerd.docker(['load', '-i', archive]);
  expect(load.code, load.stderr).toBe(0);
  expect(load.stdout).toContain('merge/one:latest');
  expect(load.stdout).toContain('merge/two:latest');
  const one = await dockerd.docker(['run', '--rm', '--network', 'none', 'merge/one:latest']);
  expect(one.stdout, one.stderr).toBe('first');
  expect((await dockerd.docker(['run', '--rm', '--network', 'none', 'merge/two:latest'])).stdout).toBe('second');

  // The same merge again is the same blob; a build that did not succeed cannot be merged.
  const again = await fetch(`${service.url}/v1/merges`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ builds: ids }) });
  expect(((await again.json()) as { digest: string }).digest).toBe(digest);
  const missing = await fetch(`${service.url}/v1/merges`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ builds: ['aaaaaaaaaaaaaaaaaaaaaaaaaa'] }) });
  expect(missing.status).toBe(404);
}, 180_000);
