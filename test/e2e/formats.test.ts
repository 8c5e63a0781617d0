/**
 * Issue 4 through the API: an uploaded image archive as the base, every output format per
 * build and per download, checked with skopeo and GNU tar.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { busyboxTar, sha256File } from '../support/images.ts';
import { run } from '../support/run.ts';
import { startService, submitBuild, uploadFile, waitForBuild, type BuildView, type Service } from '../support/service.ts';

let service: Service;
let work: string;
let base: BuildView;

async function download(id: string, query = ''): Promise<{ path: string; res: Response }> {
  const res = await fetch(`${service.url}/v1/builds/${id}/image${query}`);
  expect(
    res.status,
    await res
      .clone()
      .text()
      .catch(() => ''),
  ).toBe(200);
  const path = join(work, `${id}-${Math.random().toString(36).slice(2)}`);
  await writeFile(path, Buffer.from(await res.arrayBuffer()));
  return { path, res };
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'baler-formats-'));
  service = await startService();
  const busybox = await uploadFile(service, await busyboxTar());
  base = await waitForBuild(
    service,
    await submitBuild(service, {
      name: 'formats/base',
      compression: 'none',
      contents: [{ tar: busybox }, { text: 'remove me\n', to: '/etc/x' }],
      config: { Env: ['PATH=/bin'], Cmd: ['/bin/sh'] },
    }),
  );
  expect(base.status).toBe('succeeded');
}, 120_000);

afterAll(async () => {
  await service?.stop();
  await rm(work, { recursive: true, force: true });
});

it('builds FROM an uploaded archive (Docker 25 form) with runAsRoot, and serves every format', async () => {
  const { path: baseArchive } = await download(base.id, '?format=docker-archive-oci');
  const blob = await uploadFile(service, baseArchive);
  const child = await waitForBuild(
    service,
    await submitBuild(service, {
      name: 'formats/child',
      fromImage: { blob },
      fromImageName: 'formats/base',
      runAsRoot: 'rm /etc/x; echo hi > /hi',
      config: { Cmd: ['/bin/cat', '/hi'] },
    }),
    300_000,
  );
  expect(child.status, JSON.stringify(child.error)).toBe('succeeded');
  expect(child.result?.diffIds[0]).toBe(base.result?.diffIds[0]);
  expect(child.result?.diffIds).toHaveLength(2);

  const oci = await download(child.id, '?format=oci-archive');
  expect((await download(child.id, '?format=oci-archive')).res.headers.get('etag')).toBe(oci.res.headers.get('etag'));
  const inspect = await run('skopeo', ['inspect', '--config', `oci-archive:${oci.path}`]);
  expect(inspect.code, inspect.stderr).toBe(0);
  const config = JSON.parse(inspect.stdout) as { rootfs: { diff_ids: string[] }; config: { Env: string[]; Cmd: string[] } };
  expect(config.rootfs.diff_ids).toEqual(child.result?.diffIds);
  expect(config.config).toMatchObject({ Env: ['PATH=/bin'], Cmd: ['/bin/cat', '/hi'] });

  const rootfs = await download(child.id, '?format=rootfs');
  const listing = await run('tar', ['-tf', rootfs.path]);
  expect(listing.stdout.split('\n')).toContain('hi');
  expect(listing.stdout).not.toMatch(/etc\/x|\.wh\./);
});

it('builds in the format the spec names', async () => {
  const id = await submitBuild(service, { name: 'formats/oci', fromImage: { build: base.id }, format: 'oci-archive', compression: 'zstd' });
  const build = await waitForBuild(service, id);
  expect(build.status, JSON.stringify(build.error)).toBe('succeeded');
  const { path, res } = await download(id);
  expect(res.headers.get('content-disposition')).toMatch(/formats_oci-latest\.oci\.tar/);
  expect(`"${await sha256File(path)}"`).toBe(res.headers.get('etag'));
  const inspect = await run('skopeo', ['inspect', '--raw', `oci-archive:${path}`]);
  expect(inspect.code, inspect.stderr).toBe(0);
  expect(inspect.stdout).toContain('application/vnd.oci.image.layer.v1.tar+zstd');
});

it('refuses formats and compressions that do not go together', async () => {
  expect((await fetch(`${service.url}/v1/builds/${base.id}/image?format=zip`)).status).toBe(400);
  expect((await fetch(`${service.url}/v1/builds/${base.id}/image?format=rootfs&compression=zstd`)).status).toBe(400);
  const res = await fetch(`${service.url}/v1/builds`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'x', format: 'docker-archive', compression: 'zstd' }),
  });
  expect(res.status).toBe(400);
});

it('fails a build whose base blob is not an image archive, saying why', async () => {
  const path = join(work, 'not-an-image.tar');
  await run('tar', ['-cf', path, '-C', work, '.']);
  const id = await submitBuild(service, { name: 'formats/bad', fromImage: { blob: await uploadFile(service, path) } });
  const build = await waitForBuild(service, id);
  expect(build.status).toBe('failed');
  expect(build.error?.status).toBe(422);
  expect(build.error?.detail).toMatch(/manifest|index|image/i);
});
