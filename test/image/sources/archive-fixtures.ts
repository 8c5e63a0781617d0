/**
 * Base-image archives for the archive import tests, made by real tools from one busybox-static
 * root written by GNU tar: podman (import, save as docker-archive / oci-archive / multi-image,
 * run + commit for whiteouts), skopeo (copy to docker-archive, oci-archive gzip and zstd, an OCI
 * layout), the private dockerd 20.10 (load, save), gzip and zstd of whole archives. Two forms no
 * tool here writes are assembled from those tools' output: Docker 25's (an OCI layout with a
 * manifest.json pointing into blobs/) and a multi-platform OCI index; and nixpkgs dockerTools' layout comes
 * from baler's own docker-archive sink, with an upper layer (whiteout + opaque dir) made by GNU tar.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { expect } from 'vitest';
import type { Digest } from '../../../src/digest.ts';
import { assembleImage, type Image } from '../../../src/image/image.ts';
import { writeDockerArchive } from '../../../src/image/sinks/docker-archive.ts';
import { tarsumOfStoredTar } from '../../../src/image/tarsum-of-tar.ts';
import type { BlobStore } from '../../../src/store/blob-store.ts';
import { startDockerd } from '../../support/dockerd.ts';
import { busyboxTar } from '../../support/images.ts';
import { startPodman } from '../../support/podman.ts';
import { run, SYSTEM_PATH, type RunResult } from '../../support/run.ts';

export interface Fixture {
  /** Archive file to upload. */
  path: string;
  /** What `skopeo inspect --config --raw` is given to read the same image (never a gzip'd file). */
  skopeoRef: string;
  /** Global skopeo flags for that (e.g. `--override-arch`). */
  skopeoArgs?: string[];
  /** The names the import should report. */
  repoTags: string[];
  name?: string;
  tag?: string;
  architecture?: string;
  /** Entries the top layer must hold (whiteouts, opaque markers), as written. */
  topLayerHas?: string[];
}

function check(result: RunResult, what: string): RunResult {
  expect(result.code, `${what}\n${result.stdout}\n${result.stderr}`).toBe(0);
  return result;
}

/** skopeo with its blob-info cache and temp files kept under `work`, as the podman harness does. */
export function skopeo(work: string, args: string[]): Promise<RunResult> {
  return run('skopeo', ['--insecure-policy', ...args], {
    env: { PATH: SYSTEM_PATH, _CONTAINERS_ROOTLESS_UID: '65534', XDG_DATA_HOME: join(work, 'xdg'), TMPDIR: join(work, 'tmp') },
    timeoutMs: 60_000,
  });
}

/** The raw config skopeo reads from an image reference: its digest and diff_ids. */
export async function skopeoConfig(work: string, ref: string, extra: string[] = []): Promise<{ digest: string; diffIds: string[] }> {
  const result = check(await skopeo(work, [...extra, 'inspect', '--config', '--raw', ref]), `skopeo inspect ${ref}`);
  const raw = Buffer.from(result.stdout, 'utf8');
  return {
    digest: `sha256:${createHash('sha256').update(raw).digest('hex')}`,
    diffIds: (JSON.parse(result.stdout) as { rootfs: { diff_ids: string[] } }).rootfs.diff_ids,
  };
}

async function sh(cmd: string, args: string[], cwd?: string): Promise<void> {
  check(await run(cmd, args, { cwd, timeoutMs: 60_000 }), `${cmd} ${args.join(' ')}`);
}

function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** busybox-static root (GNU tar) plus /etc/keep and /d/old/file, for later layers to delete. */
async function baseRootTar(work: string): Promise<string> {
  const made = await busyboxTar();
  const tar = join(work, 'base.tar');
  await cp(made, tar);
  await rm(dirname(made), { recursive: true, force: true });
  const extra = join(work, 'extra');
  await mkdir(join(extra, 'etc'), { recursive: true });
  await mkdir(join(extra, 'd/old'), { recursive: true });
  await writeFile(join(extra, 'etc/keep'), 'keep\n');
  await writeFile(join(extra, 'd/old/file'), 'old\n');
  await sh('tar', ['--numeric-owner', '--owner=0', '--group=0', '-C', extra, '-rf', tar, './etc', './d']);
  return tar;
}

/** An upper layer by GNU tar: /etc/keep deleted (whiteout), /d opaque with a new file. */
async function upperLayerTar(work: string): Promise<string> {
  const root = join(work, 'upper');
  await mkdir(join(root, 'd'), { recursive: true });
  await mkdir(join(root, 'etc'), { recursive: true });
  await writeFile(join(root, 'd/.wh..wh..opq'), '');
  await writeFile(join(root, 'd/new'), 'new\n');
  await writeFile(join(root, 'etc/.wh.keep'), '');
  const tar = join(work, 'upper.tar');
  await sh('tar', ['--numeric-owner', '--owner=0', '--group=0', '--sort=name', '-C', root, '-cf', tar, '.']);
  return tar;
}

async function storedLayer(store: BlobStore, path: string): Promise<{ diffId: Digest; size: number; tarsum: string }> {
  const put = await store.put(createReadStream(path));
  return { diffId: put.digest, size: put.size, tarsum: await tarsumOfStoredTar(store, put.digest) };
}

/** The seed's layout, by baler's own sink: two layers (busybox root, whiteout/opaque upper). */
async function seedArchive(work: string, store: BlobStore, baseTar: string): Promise<{ path: string; image: Image }> {
  const created = '2024-01-02T03:04:05Z';
  const image = assembleImage({ architecture: 'amd64', os: 'linux', created, config: { Cmd: ['/bin/sh'], Env: ['A=1'] }, history: [{ created }, { created }] }, undefined, [
    await storedLayer(store, baseTar),
    await storedLayer(store, await upperLayerTar(work)),
  ]);
  const path = join(work, 'seed.tar');
  await pipeline(writeDockerArchive(image, { name: 'seed/img', tag: '1' }, Date.parse(created) / 1000, store), createWriteStream(path));
  return { path, image };
}

interface OciDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { architecture: string; os: string };
}

async function writeBlob(layout: string, data: string): Promise<OciDescriptor & { data: string }> {
  const hex = sha256(data);
  await writeFile(join(layout, 'blobs/sha256', hex), data);
  return { mediaType: '', digest: `sha256:${hex}`, size: Buffer.byteLength(data), data };
}

async function readLayoutManifest(layout: string): Promise<{ descriptor: OciDescriptor; manifest: { config: OciDescriptor; layers: OciDescriptor[] } }> {
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: OciDescriptor[] };
  const descriptor = index.manifests[0] as OciDescriptor;
  const manifest = JSON.parse(await readFile(join(layout, 'blobs/sha256', descriptor.digest.slice(7)), 'utf8'));
  return { descriptor, manifest };
}

/** Docker 25's `docker save`: the OCI layout (uncompressed layers), index annotations as moby writes them, a manifest.json into blobs/. */
async function docker25Archive(work: string, layout: string): Promise<string> {
  const { descriptor, manifest } = await readLayoutManifest(layout);
  const index = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [{ ...descriptor, annotations: { 'io.containerd.image.name': 'docker.io/d25/img:1', 'org.opencontainers.image.ref.name': '1' } }],
  };
  await writeFile(join(layout, 'index.json'), JSON.stringify(index));
  const blob = (d: OciDescriptor) => `blobs/sha256/${d.digest.slice(7)}`;
  await writeFile(join(layout, 'manifest.json'), JSON.stringify([{ Config: blob(manifest.config), RepoTags: ['d25/img:1'], Layers: manifest.layers.map(blob) }]));
  const path = join(work, 'docker25.tar');
  await sh('tar', ['--numeric-owner', '--owner=0', '--group=0', '-C', layout, '-cf', path, 'blobs', 'oci-layout', 'index.json', 'manifest.json']);
  return path;
}

/** An OCI layout whose index.json names an image index of linux/amd64 and linux/arm64 (same layers). */
async function multiArchArchive(work: string, layout: string): Promise<string> {
  const { descriptor, manifest } = await readLayoutManifest(layout);
  const amd64Config = JSON.parse(await readFile(join(layout, 'blobs/sha256', manifest.config.digest.slice(7)), 'utf8'));
  const armConfig = await writeBlob(layout, JSON.stringify({ ...amd64Config, architecture: 'arm64', variant: 'v8' }));
  const armManifest = await writeBlob(layout, JSON.stringify({ ...manifest, config: { ...manifest.config, digest: armConfig.digest, size: armConfig.size } }));
  const linux = (architecture: string) => ({ architecture, os: 'linux' });
  const imageIndex = await writeBlob(
    layout,
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        { mediaType: descriptor.mediaType, digest: armManifest.digest, size: armManifest.size, platform: { ...linux('arm64'), variant: 'v8' } },
        { mediaType: descriptor.mediaType, digest: descriptor.digest, size: descriptor.size, platform: linux('amd64') },
      ],
    }),
  );
  const index = {
    schemaVersion: 2,
    manifests: [{ mediaType: 'application/vnd.oci.image.index.v1+json', digest: imageIndex.digest, size: imageIndex.size, annotations: { 'org.opencontainers.image.ref.name': 'imp/multiarch:1' } }],
  };
  await writeFile(join(layout, 'index.json'), JSON.stringify(index));
  const path = join(work, 'multiarch.tar');
  await sh('tar', ['--numeric-owner', '--owner=0', '--group=0', '-C', layout, '-cf', path, 'blobs', 'oci-layout', 'index.json']);
  return path;
}

export const FIXTURE_NAMES = [
  'podman save docker-archive',
  'podman save oci-archive (gzip layers)',
  'podman save -m, picked by name',
  'podman commit (whiteouts)',
  'skopeo copy docker-archive',
  'skopeo copy oci-archive (gzip layers)',
  'skopeo copy oci-archive (zstd layers)',
  'skopeo copy of the nixpkgs dockerTools layout to oci-archive (zstd, whiteout, opaque)',
  'docker 20.10 save',
  'docker 20.10 save of several images, picked by name and tag',
  'docker 20.10 save, picked by tag',
  'docker 20.10 save of the nixpkgs dockerTools layout (whiteout, opaque)',
  "docker 20.10 save, gzip'd",
  "podman oci-archive, gzip'd",
  "podman docker-archive, zstd'd",
  'seed layout (baler sink)',
  'seed layout without repositories, json, VERSION',
  'Docker 25 layout (OCI layout + manifest.json)',
  'OCI index, linux/amd64',
  'OCI index, linux/arm64',
] as const;
export type FixtureName = (typeof FIXTURE_NAMES)[number];

export interface FixtureSet {
  fixtures: Record<FixtureName, Fixture>;
  /** The seed archive's image as baler assembled it (legacy ids to compare with). */
  seedImage: Image;
}

/** Make every fixture archive under `work`; `scratch` is a store for building the nixpkgs dockerTools-layout archive. */
export async function makeFixtures(work: string, scratch: BlobStore): Promise<FixtureSet> {
  await mkdir(join(work, 'xdg'), { recursive: true });
  await mkdir(join(work, 'tmp'), { recursive: true });
  const f = (name: string) => join(work, name);
  const baseTar = await baseRootTar(work);
  const seed = await seedArchive(work, scratch, baseTar);

  const podman = await startPodman();
  try {
    const p = async (args: string[]) => check(await podman.podman(args), `podman ${args.join(' ')}`);
    await p(['import', baseTar, 'imp/base:1']);
    await p(['import', '--change', 'CMD ["/bin/sh"]', baseTar, 'imp/other:2']);
    await p(['save', '--format', 'docker-archive', '-o', f('podman-docker.tar'), 'imp/base:1']);
    await p(['save', '--format', 'oci-archive', '-o', f('podman-oci.tar'), 'imp/base:1']);
    await p(['save', '-m', '--format', 'docker-archive', '-o', f('podman-multi.tar'), 'imp/base:1', 'imp/other:2']);
    // podman (vfs) commit writes deletions as `.wh.` files.
    await p(['run', '--name', 'wh', 'imp/base:1', '/bin/sh', '-c', 'rm /etc/keep && rm -r /d/old && echo new > /d/new']);
    await p(['commit', 'wh', 'imp/whiteout:1']);
    await p(['save', '--format', 'docker-archive', '-o', f('podman-whiteout.tar'), 'imp/whiteout:1']);
  } finally {
    await podman.cleanup();
  }

  const sk = async (args: string[]) => check(await skopeo(work, args), `skopeo ${args.join(' ')}`);
  const src = `docker-archive:${f('podman-docker.tar')}`;
  await sk(['copy', '-q', src, `docker-archive:${f('skopeo-docker.tar')}:imp/skopeo:1`]);
  await sk(['copy', '-q', src, `oci-archive:${f('skopeo-oci-gzip.tar')}:imp/skopeo:1`]);
  await sk(['copy', '-q', '--dest-compress-format', 'zstd', src, `oci-archive:${f('skopeo-oci-zstd.tar')}:imp/skopeo:zstd`]);
  await sk(['copy', '-q', '--dest-compress-format', 'zstd', `docker-archive:${seed.path}`, `oci-archive:${f('skopeo-seed-zstd.tar')}:seed/img:zstd`]);
  await sk(['copy', '-q', '--dest-oci-accept-uncompressed-layers', src, `oci:${f('layout-d25')}:imp/d25:1`]);
  await sk(['copy', '-q', src, `oci:${f('layout-multiarch')}:imp/multiarch:1`]);

  const dockerd = await startDockerd();
  try {
    const d = async (args: string[]) => check(await dockerd.docker(args), `docker ${args.join(' ')}`);
    await d(['load', '-i', f('podman-multi.tar')]);
    await d(['load', '-i', seed.path]);
    await d(['tag', 'localhost/imp/base:1', 'imp/base:latest']);
    await d(['save', '-o', f('docker-single.tar'), 'localhost/imp/base:1']);
    await d(['save', '-o', f('docker-multi.tar'), 'localhost/imp/base:1', 'imp/base:latest', 'localhost/imp/other:2']);
    await d(['save', '-o', f('docker-seed.tar'), 'seed/img:1']);
  } finally {
    await dockerd.stop();
  }

  // Whole archives compressed (GNU gzip without name/time, zstd), and the nixpkgs dockerTools layout with its
  // legacy extras (`repositories`, per-layer `json` and `VERSION`) removed.
  await sh('sh', ['-c', `gzip -nc docker-single.tar > docker-single.tar.gz && gzip -nc podman-oci.tar > podman-oci.tar.gz && zstd -q -c podman-docker.tar > podman-docker.tar.zst`], work);
  await cp(seed.path, f('seed-minimal.tar'));
  await sh('tar', ['--delete', '-f', f('seed-minimal.tar'), '--wildcards', 'repositories', '*/json', '*/VERSION']);
  const docker25 = await docker25Archive(work, f('layout-d25'));
  const multiarch = await multiArchArchive(work, f('layout-multiarch'));

  const whiteoutEntries = ['./etc/.wh.keep', './d/.wh..wh..opq'];
  const fixture = (path: string, skopeoRef: string, repoTags: string[], extra: Partial<Fixture> = {}): Fixture => ({ path, skopeoRef, repoTags, ...extra });
  const fixtures: Record<FixtureName, Fixture> = {
    'podman save docker-archive': fixture(f('podman-docker.tar'), src, ['localhost/imp/base:1']),
    'podman save oci-archive (gzip layers)': fixture(f('podman-oci.tar'), `oci-archive:${f('podman-oci.tar')}`, ['localhost/imp/base:1']),
    'podman save -m, picked by name': fixture(f('podman-multi.tar'), `docker-archive:${f('podman-multi.tar')}:localhost/imp/other:2`, ['localhost/imp/other:2'], { name: 'imp/other' }),
    'podman commit (whiteouts)': fixture(f('podman-whiteout.tar'), `docker-archive:${f('podman-whiteout.tar')}`, ['localhost/imp/whiteout:1'], { topLayerHas: ['etc/.wh.keep', 'd/.wh.old'] }),
    'skopeo copy docker-archive': fixture(f('skopeo-docker.tar'), `docker-archive:${f('skopeo-docker.tar')}`, ['docker.io/imp/skopeo:1']),
    'skopeo copy oci-archive (gzip layers)': fixture(f('skopeo-oci-gzip.tar'), `oci-archive:${f('skopeo-oci-gzip.tar')}`, ['imp/skopeo:1']),
    'skopeo copy oci-archive (zstd layers)': fixture(f('skopeo-oci-zstd.tar'), `oci-archive:${f('skopeo-oci-zstd.tar')}`, ['imp/skopeo:zstd'], { tag: 'zstd' }),
    'skopeo copy of the nixpkgs dockerTools layout to oci-archive (zstd, whiteout, opaque)': fixture(f('skopeo-seed-zstd.tar'), `oci-archive:${f('skopeo-seed-zstd.tar')}`, ['seed/img:zstd'], {
      topLayerHas: whiteoutEntries,
    }),
    'docker 20.10 save': fixture(f('docker-single.tar'), `docker-archive:${f('docker-single.tar')}`, ['localhost/imp/base:1']),
    'docker 20.10 save of several images, picked by name and tag': fixture(
      f('docker-multi.tar'),
      `docker-archive:${f('docker-multi.tar')}:imp/base:latest`,
      ['localhost/imp/base:1', 'imp/base:latest'],
      { name: 'imp/base', tag: 'latest' },
    ),
    'docker 20.10 save, picked by tag': fixture(f('docker-multi.tar'), `docker-archive:${f('docker-multi.tar')}:localhost/imp/other:2`, ['localhost/imp/other:2'], { tag: '2' }),
    'docker 20.10 save of the nixpkgs dockerTools layout (whiteout, opaque)': fixture(f('docker-seed.tar'), `docker-archive:${f('docker-seed.tar')}`, ['seed/img:1'], { topLayerHas: whiteoutEntries }),
    "docker 20.10 save, gzip'd": fixture(f('docker-single.tar.gz'), `docker-archive:${f('docker-single.tar')}`, ['localhost/imp/base:1']),
    "podman oci-archive, gzip'd": fixture(f('podman-oci.tar.gz'), `oci-archive:${f('podman-oci.tar')}`, ['localhost/imp/base:1']),
    "podman docker-archive, zstd'd": fixture(f('podman-docker.tar.zst'), src, ['localhost/imp/base:1']),
    'seed layout (baler sink)': fixture(seed.path, `docker-archive:${seed.path}`, ['seed/img:1'], { name: 'seed/img', tag: '1', topLayerHas: whiteoutEntries }),
    'seed layout without repositories, json, VERSION': fixture(f('seed-minimal.tar'), `docker-archive:${f('seed-minimal.tar')}`, ['seed/img:1'], { topLayerHas: whiteoutEntries }),
    'Docker 25 layout (OCI layout + manifest.json)': fixture(docker25, `docker-archive:${docker25}`, ['d25/img:1'], { name: 'docker.io/d25/img' }),
    'OCI index, linux/amd64': fixture(multiarch, `oci-archive:${multiarch}`, ['imp/multiarch:1']),
    'OCI index, linux/arm64': fixture(multiarch, `oci-archive:${multiarch}`, ['imp/multiarch:1'], { architecture: 'arm64', skopeoArgs: ['--override-arch', 'arm64'] }),
  };
  return { fixtures, seedImage: seed.image };
}
