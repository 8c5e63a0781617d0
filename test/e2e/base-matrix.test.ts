/**
 * Issue 4's matrix: base images made by real tools (podman, skopeo, dockerd 20.10, baler's own
 * seed layout; plain, gzip'd, zstd'd; Docker 25's form), each used as `fromImage: {blob}` for a
 * build with contents and runAsRoot, which then loads and runs under docker and podman, with
 * the base's deletions (whiteouts, opaque dirs) still deleted.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';
import { FIXTURE_NAMES, makeFixtures, type FixtureSet } from '../image/sources/archive-fixtures.ts';
import { startBuildah } from '../../bench/support/buildah.ts';
import { startDockerd, type Dockerd } from '../support/dockerd.ts';
import { startPodman, type Podman } from '../support/podman.ts';
import { downloadImage, startService, submitBuild, uploadFile, waitForBuild, type Service } from '../support/service.ts';

const CHECK = 'cat /added /ran; [ -e /etc/keep ] && echo keep || echo no-keep; [ -e /d/old/file ] && echo old || echo no-old';
// The arm64 image cannot run here; every other form is built on and run, plus buildah's.
const NAMES = [...FIXTURE_NAMES.filter((name) => !name.includes('arm64')), 'buildah commit --format docker', 'buildah commit --format oci'] as const;

interface Case {
  path: string;
  name?: string;
  tag?: string;
  deletesKeep: boolean;
  deletesOld: boolean;
}
const cases = new Map<string, Case>();

let work: string;
let set: FixtureSet;
let service: Service;
let dockerd: Dockerd;
let podman: Podman;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'baler-matrix-'));
  set = await makeFixtures(work, await FsBlobStore.create(join(work, 'scratch')));
  for (const name of FIXTURE_NAMES) {
    const f = set.fixtures[name];
    const entries = (f.topLayerHas ?? []).map((e) => e.replace(/^\.\//, ''));
    cases.set(name, { path: f.path, name: f.name, tag: f.tag, deletesKeep: entries.includes('etc/.wh.keep'), deletesOld: entries.some((e) => e.startsWith('d/.wh.')) });
  }
  // buildah (1.28, private storage) over podman's base: delete a file and a directory, commit both ways.
  const buildah = await startBuildah(work);
  try {
    const ok = (r: { code: number; stderr: string }) => expect(r.code, r.stderr).toBe(0);
    const from = await buildah.buildah(['from', `docker-archive:${set.fixtures['podman save docker-archive'].path}`]);
    ok(from);
    const ctr = from.stdout.trim().split('\n').pop() as string;
    ok(await buildah.buildah(['run', ctr, '--', '/bin/sh', '-c', 'rm /etc/keep; rm -rf /d/old']));
    for (const format of ['docker', 'oci'] as const) {
      const path = join(work, `buildah-${format}.tar`);
      ok(await buildah.buildah(['commit', '--format', format, ctr, `${format === 'docker' ? 'docker-archive' : 'oci-archive'}:${path}:buildah/wh:1`]));
      cases.set(`buildah commit --format ${format}`, { path, deletesKeep: true, deletesOld: true });
    }
  } finally {
    await buildah.cleanup();
  }
  [service, dockerd, podman] = await Promise.all([startService(), startDockerd(), startPodman()]);
}, 300_000);

afterAll(async () => {
  await Promise.all([service?.stop(), dockerd?.stop(), podman?.cleanup()]);
  await rm(work, { recursive: true, force: true });
}, 120_000);

describe.each(NAMES.map((name, i) => [name, i] as const))('FROM %s', (name, i) => {
  it('builds with contents and runAsRoot, and runs under docker and podman with the base deletions kept', async () => {
    const fixture = cases.get(name) as Case;
    const image = `matrix/case${i}`;
    const id = await submitBuild(service, {
      name: image,
      compression: 'none',
      fromImage: { blob: await uploadFile(service, fixture.path) },
      ...(fixture.name ? { fromImageName: fixture.name } : {}),
      ...(fixture.tag ? { fromImageTag: fixture.tag } : {}),
      contents: [{ text: 'added\n', to: '/added' }],
      runAsRoot: 'echo ran > /ran',
      config: { Cmd: ['/bin/sh', '-c', CHECK] },
    });
    const build = await waitForBuild(service, id, 180_000);
    expect(build.status, JSON.stringify(build.error)).toBe('succeeded');
    const archive = join(work, `case${i}.tar`);
    await downloadImage(service, id, archive);
    const expected = ['added', 'ran', fixture.deletesKeep ? 'no-keep' : 'keep', fixture.deletesOld ? 'no-old' : 'old'].join('\n');

    expect((await dockerd.docker(['load', '-i', archive])).code).toBe(0);
    const viaDocker = await dockerd.docker(['run', '--rm', '--network', 'none', `${image}:latest`]);
    expect(viaDocker.stdout.trim(), viaDocker.stderr).toBe(expected);

    expect((await podman.podman(['load', '-i', archive])).code).toBe(0);
    const viaPodman = await podman.podman(['--runtime', 'runc', 'run', '--rm', '--network', 'none', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=4096:4096', `localhost/${image}:latest`]);
    expect(viaPodman.stdout.trim(), viaPodman.stderr).toBe(expected);
  }, 240_000);
});
