/**
 * The sinks' outputs under real container engines: the Docker-25 `docker-archive` form and
 * `oci-archive` loaded and run by a private dockerd 20.10 and by podman 4.3; `rootfs` compared
 * with `docker export` of a container of the same image.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeDockerArchiveOci } from '../../../src/image/sinks/docker-archive-oci.ts';
import { writeOciArchive } from '../../../src/image/sinks/oci-archive.ts';
import { writeRootfs } from '../../../src/image/sinks/rootfs.ts';
import { startDockerd, type Dockerd } from '../../support/dockerd.ts';
import { startPodman, type Podman } from '../../support/podman.ts';
import { EXPECTED, makeInputs, makeTestImage, saveOutput, type Inputs, type TestImage } from './fixture.ts';
import { extract, listTree, type ListedFile } from './tree-listing.ts';

const NAME = 'baler-test/sinks';

let inputs: Inputs;
let test: TestImage;
const files = {} as Record<'docker-none' | 'docker-gzip' | 'oci-gzip' | 'oci-zstd' | 'rootfs', string>;

beforeAll(async () => {
  inputs = await makeInputs();
  test = await makeTestImage(inputs, join(inputs.dir, 'store'));
  const { image, store } = test;
  for (const compression of ['none', 'gzip'] as const) {
    files[`docker-${compression}`] = join(inputs.dir, `docker-${compression}.tar`);
    await saveOutput(await writeDockerArchiveOci(image, { refName: `${NAME}:docker-${compression}`, compression, store }), files[`docker-${compression}`]);
  }
  for (const compression of ['gzip', 'zstd'] as const) {
    files[`oci-${compression}`] = join(inputs.dir, `oci-${compression}.tar`);
    await saveOutput(await writeOciArchive(image, { refName: `${NAME}:oci-${compression}`, compression, store }), files[`oci-${compression}`]);
  }
  files.rootfs = join(inputs.dir, 'rootfs.tar');
  await saveOutput(await writeRootfs(image, { store }), files.rootfs);
});

afterAll(async () => {
  if (inputs) await rm(inputs.dir, { recursive: true, force: true });
});

/**
 * What Docker adds to every container's filesystem (moby's daemon/initlayer): mount points and
 * files it bind-mounts at run time. `docker export` of a created container shows them, as
 * empty files and directories owned by root; they are not part of the image.
 */
const DOCKER_INIT_PATHS = ['.dockerenv', 'etc/hostname', 'etc/hosts', 'etc/resolv.conf', 'etc/mtab', 'dev/console', 'dev/pts', 'dev/shm', 'proc', 'sys'];

describe('under dockerd 20.10', () => {
  let dockerd: Dockerd;
  beforeAll(async () => {
    dockerd = await startDockerd();
  }, 60_000);
  afterAll(async () => dockerd?.stop(), 60_000);

  it.each(['none', 'gzip'] as const)('docker load + docker run of the Docker-25 form (%s layers): manifest.json is read', async (compression) => {
    const tag = `${NAME}:docker-${compression}`;
    const load = await dockerd.docker(['load', '-i', files[`docker-${compression}`]]);
    expect(load.code, load.stderr).toBe(0);
    expect(load.stdout).toContain(`Loaded image: ${tag}`);
    const ran = await dockerd.docker(['run', '--rm', '--network', 'none', tag]);
    expect(ran.code, ran.stderr).toBe(0);
    expect(ran.stdout.trim()).toBe(EXPECTED);
    const id = await dockerd.docker(['image', 'inspect', '--format', '{{.Id}} {{json .RootFS.Layers}}', tag]);
    expect(id.stdout.trim()).toBe(`${test.image.imageId} ${JSON.stringify(test.image.layers.map((l) => l.diffId))}`);
    await dockerd.docker(['rmi', tag]); // the next load starts from an empty layer store again
  });

  it('rootfs equals docker export of a container of the image (paths, types, modes, owners, times, contents, links, xattrs), less what Docker adds', async () => {
    const tag = `${NAME}:docker-none`;
    expect((await dockerd.docker(['load', '-i', files['docker-none']])).code).toBe(0);
    const created = await dockerd.docker(['create', '--name', 'sinks-export', tag]);
    expect(created.code, created.stderr).toBe(0);
    const exported = join(inputs.dir, 'export.tar');
    const exp = await dockerd.docker(['export', '-o', exported, 'sinks-export']);
    expect(exp.code, exp.stderr).toBe(0);

    const ours = await listTree(await extract(files.rootfs, inputs.dir));
    const docker = await listTree(await extract(exported, inputs.dir));
    for (const path of DOCKER_INIT_PATHS) {
      expect(ours.has(path), `the image has no ${path}`).toBe(false);
      expect(docker.has(path), `docker export has ${path}`).toBe(true);
      docker.delete(path);
    }
    // Their parent directories: created by Docker when the image has none (`dev` here), and
    // their mtime changed by Docker's additions when it has (`etc`).
    for (const dir of ['dev', 'etc']) {
      if (!ours.has(dir)) {
        expect([...docker.keys()].filter((p) => p.startsWith(`${dir}/`))).toEqual([]);
        docker.delete(dir);
      } else {
        (docker.get(dir) as ListedFile).mtime = (ours.get(dir) as ListedFile).mtime;
      }
    }
    expect(ours.size).toBeGreaterThan(30);
    expect(Object.fromEntries(ours)).toEqual(Object.fromEntries(docker));
  });
});

describe('under podman 4.3', () => {
  let podman: Podman;
  beforeAll(async () => {
    podman = await startPodman();
  }, 60_000);
  afterAll(async () => podman?.cleanup(), 60_000);

  it.each(['docker-none', 'docker-gzip', 'oci-gzip', 'oci-zstd'] as const)('podman load + podman run (%s), named from the archive', async (kind) => {
    const tag = `${NAME}:${kind}`;
    const load = await podman.podman(['load', '-i', files[kind]]);
    expect(load.code, load.stderr).toBe(0);
    expect(load.stdout).toContain(`docker.io/${tag}`);
    const ran = await podman.podman(['--runtime', 'runc', 'run', '--rm', '--network', 'none', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=4096:4096', tag]);
    expect(ran.code, ran.stderr).toBe(0);
    expect(ran.stdout.trim()).toBe(EXPECTED);
    const id = await podman.podman(['image', 'inspect', '--format', '{{.ID}}', tag]);
    expect(`sha256:${id.stdout.trim()}`).toBe(test.image.imageId);
  });
});
