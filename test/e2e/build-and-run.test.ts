/**
 * The whole path over real HTTP, a real Redis and a real worker process: upload a busybox
 * tar, build, download, then hand the image to tools we did not write (skopeo, umoci, a
 * private dockerd, podman) and run it.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDockerd, type Dockerd } from '../support/dockerd.ts';
import { busyboxTar, sha256File } from '../support/images.ts';
import { startPodman, type Podman } from '../support/podman.ts';
import { run } from '../support/run.ts';
import { downloadImage, startService, submitBuild, uploadFile, waitForBuild, type Service } from '../support/service.ts';

let service: Service;
let work: string;
let busybox: string;

const IMAGE = 'baler-e2e/hello';
// What the container prints: the greeting, then mode/owner of files the spec laid down.
const CHECK = "cat /etc/greeting; for f in /etc/greeting /data /bin/busybox /bin/sh; do busybox stat -c '%a %u %g %F %n' $f; done";
const EXPECTED = [
  'hello from baler',
  '640 1234 2345 regular file /etc/greeting',
  '750 1234 2345 directory /data',
  '755 1234 2345 regular file /bin/busybox',
  '777 1234 2345 symbolic link /bin/sh',
].join('\n');

function spec(tag: string, compression: 'gzip' | 'none') {
  return {
    name: IMAGE,
    tag,
    uid: 1234,
    gid: 2345,
    compression,
    contents: [{ tar: busybox }, { text: 'hello from baler\n', to: '/etc/greeting', mode: '0640' }, { dir: '/data', mode: '0750' }],
    config: { Cmd: ['/bin/sh', '-c', CHECK], Env: ['PATH=/bin'], Labels: { 'org.example.test': 'e2e' } },
  };
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'baler-e2e-'));
  service = await startService();
  busybox = await uploadFile(service, await busyboxTar());
}, 60_000);

afterAll(async () => {
  await service?.stop();
  await rm(work, { recursive: true, force: true });
});

async function buildAndDownload(tag: string, compression: 'gzip' | 'none', opts: { noCache?: boolean } = {}) {
  const id = await submitBuild(service, spec(tag, compression), opts);
  const build = await waitForBuild(service, id);
  expect(build.status, JSON.stringify(build.error)).toBe('succeeded');
  const path = join(work, `${tag}-${id}.tar${compression === 'gzip' ? '.gz' : ''}`);
  const res = await downloadImage(service, id, path);
  return { id, build, path, res };
}

describe('an image built over HTTP', () => {
  let plain: Awaited<ReturnType<typeof buildAndDownload>>;
  let gzipped: Awaited<ReturnType<typeof buildAndDownload>>;

  beforeAll(async () => {
    plain = await buildAndDownload('plain', 'none');
    gzipped = await buildAndDownload('gz', 'gzip');
  }, 120_000);

  it('downloads with the headers the API promises', async () => {
    const { res, build, path } = gzipped;
    expect(res.headers.get('content-type')).toBe('application/gzip');
    expect(res.headers.get('etag')).toBe(`"${build.result?.archive.digest}"`);
    expect(res.headers.get('content-disposition')).toBe('attachment; filename="baler-e2e_hello-gz.tar.gz"');
    expect(Number(res.headers.get('content-length'))).toBe(build.result?.archive.size);
    expect(await sha256File(path)).toBe(build.result?.archive.digest);
    expect(plain.res.headers.get('content-type')).toBe('application/x-tar');

    const ranged = await fetch(`${service.url}/v1/builds/${plain.id}/image`, { headers: { range: 'bytes=1000-1999' } });
    expect(ranged.status).toBe(206);
    expect(ranged.headers.get('content-range')).toBe(`bytes 1000-1999/${plain.build.result?.archive.size}`);
    const whole = await readFile(plain.path);
    expect(Buffer.from(await ranged.arrayBuffer())).toEqual(whole.subarray(1000, 2000));

    const head = await fetch(`${service.url}/v1/builds/${plain.id}/image`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(Number(head.headers.get('content-length'))).toBe(whole.length);
  });

  it('is accepted by skopeo copy (layers re-hashed against diff_ids) and unpacked by umoci', async () => {
    const oci = join(work, 'oci');
    const copy = await run('skopeo', ['copy', `docker-archive:${plain.path}`, `oci:${oci}:hello`]);
    expect(copy.code, copy.stderr).toBe(0);
    // skopeo cannot read a gzip'd docker-archive; the gzip'd download holds the same tar.
    const gunzipped = join(work, 'gunzipped.tar');
    await run('sh', ['-c', `gzip -dc '${gzipped.path}' > '${gunzipped}'`]);
    const copyGz = await run('skopeo', ['copy', `docker-archive:${gunzipped}`, `oci:${join(work, 'oci-gz')}:hello`]);
    expect(copyGz.code, copyGz.stderr).toBe(0);

    const inspect = await run('skopeo', ['inspect', '--config', `docker-archive:${plain.path}`]);
    expect(inspect.code, inspect.stderr).toBe(0);
    const config = JSON.parse(inspect.stdout) as { rootfs: { diff_ids: string[] }; config: { Cmd: string[]; Labels: Record<string, string> } };
    expect(config.rootfs.diff_ids).toEqual(plain.build.result?.diffIds);
    expect(config.config.Labels).toEqual({ 'org.example.test': 'e2e' });

    const bundle = join(work, 'bundle');
    const unpack = await run('umoci', ['unpack', '--image', `${oci}:hello`, bundle]);
    expect(unpack.code, unpack.stderr).toBe(0);
    expect(await readFile(join(bundle, 'rootfs/etc/greeting'), 'utf8')).toBe('hello from baler\n');
  });

  describe('under docker', () => {
    let dockerd: Dockerd;
    beforeAll(async () => {
      dockerd = await startDockerd();
    }, 60_000);
    afterAll(async () => dockerd?.stop(), 60_000);

    it.each(['plain', 'gz'] as const)(
      'docker load + docker run (%s archive)',
      async (kind) => {
        const image = kind === 'plain' ? plain : gzipped;
        const load = await dockerd.docker(['load', '-i', image.path]);
        expect(load.code, load.stderr).toBe(0);
        expect(load.stdout).toContain(`${IMAGE}:${kind}`);
        const ran = await dockerd.docker(['run', '--rm', '--network', 'none', `${IMAGE}:${kind}`]);
        expect(ran.code, ran.stderr).toBe(0);
        expect(ran.stdout.trim()).toBe(EXPECTED);
        const inspect = await dockerd.docker(['image', 'inspect', '--format', '{{.Id}}', `${IMAGE}:${kind}`]);
        expect(inspect.stdout.trim()).toBe(image.build.result?.imageId);
      },
      120_000,
    );
  });

  describe('under podman', () => {
    let podman: Podman;
    beforeAll(async () => {
      podman = await startPodman();
    }, 60_000);
    afterAll(async () => podman?.cleanup(), 60_000);

    it.each(['plain', 'gz'] as const)(
      'podman load + podman run with runc (%s archive)',
      async (kind) => {
        let path = plain.path;
        if (kind === 'gz') {
          // Debian 12's podman (containers/image 5.23) cannot read a gzip'd docker-archive.
          path = join(work, 'for-podman.tar');
          await run('sh', ['-c', `gzip -dc '${gzipped.path}' > '${path}'`]);
        }
        const load = await podman.podman(['load', '-i', path]);
        expect(load.code, load.stderr).toBe(0);
        const ran = await podman.podman(['--runtime', 'runc', 'run', '--rm', '--network', 'none', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=4096:4096', `${IMAGE}:${kind}`]);
        expect(ran.code, ran.stderr).toBe(0);
        expect(ran.stdout.trim()).toBe(EXPECTED);
      },
      120_000,
    );
  });
});

describe('reproducibility', () => {
  it.each(['gzip', 'none'] as const)(
    'one spec built twice, at different times, gives the same archive bytes (%s)',
    async (compression) => {
      const first = await buildAndDownload(`repro-${compression}`, compression);
      await new Promise((r) => setTimeout(r, 1500)); // a different second on the clock
      const second = await buildAndDownload(`repro-${compression}`, compression, { noCache: true });
      expect(second.id).not.toBe(first.id);
      expect(second.build).not.toHaveProperty('cachedFrom');
      expect(await sha256File(second.path)).toBe(await sha256File(first.path));
      expect(second.build.result?.archive.digest).toBe(first.build.result?.archive.digest);
    },
    120_000,
  );
});
