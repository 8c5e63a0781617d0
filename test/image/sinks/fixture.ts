/**
 * A three-layer test image for the sinks, made with the real build code and GNU tar:
 *  1. `runBuild`: a busybox root plus a GNU tar of awkward files (hard links, owners, a
 *     directory and files the upper layers delete or replace);
 *  2. `runBuild` with `fromImage: {build}` over 1: replaces a hard-linked file (the other
 *     links must keep the old data), a file, a directory (by a file);
 *  3. a layer tar written by GNU tar by hand, as other tools write them: `./` entries, a
 *     `.wh.` file, a whited-out directory, an opaque directory, a hard link, a fifo, a long
 *     and a non-ASCII name, setuid, a PAX-sized uid, a `security.capability` xattr.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, chown, copyFile, link, mkdir, mkdtemp, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { type Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DEFAULT_TENANT } from '../../../src/builds/tenant.ts';
import type { BuildResult } from '../../../src/builds/build-result.ts';
import { runBuild } from '../../../src/builds/run-build.ts';
import { resolveSpec, type BuildSpec } from '../../../src/builds/spec.ts';
import type { Digest } from '../../../src/digest.ts';
import { assembleImage, type Image } from '../../../src/image/image.ts';
import { loadImage, storeImage } from '../../../src/image/stored-image.ts';
import { FsBlobStore } from '../../../src/store/fs-blob-store.ts';
import { BUSYBOX } from '../../support/images.ts';
import { run } from '../../support/run.ts';

export const CREATED = '2022-02-03T04:05:06Z';
export const CREATED_EPOCH = Date.parse(CREATED) / 1000;
export const LONG_PATH = `deep/${'d'.repeat(60)}/${'f'.repeat(70)}.txt`;
export const UNICODE = 'unicode/grüße-日本.txt';

/** What the image's Cmd prints when run. */
export const CHECK =
  'cat /etc/greeting /app/hard /aaa-link /app/data.bin; ls /data; ls /opq; test -e /gonedir || echo gonedir-gone; ' +
  'cat /replaced-dir /hl/aa-link; busybox stat -c "%a %u %g %n" /bin/suid /owned/file /big/file';
export const EXPECTED = [
  'v2',
  'old data',
  'old data',
  'new data',
  'keep',
  'new',
  'gonedir-gone',
  'now a file',
  'linked',
  '4755 0 0 /bin/suid',
  '600 1234 2345 /owned/file',
  '644 3000000 3000000 /big/file',
].join('\n');

export interface Inputs {
  dir: string;
  busyboxTar: string;
  lowerTar: string;
  topTar: string;
}

async function tarOf(root: string, out: string, extra: string[] = []): Promise<string> {
  const result = await run('tar', ['--numeric-owner', '--sort=name', `--mtime=@${CREATED_EPOCH}`, ...extra, '-C', root, '-cf', out, '.']);
  if (result.code !== 0) throw new Error(`tar: ${result.stderr}`);
  return out;
}

/** The input tars, made once (the same bytes then go into every store). */
export async function makeInputs(): Promise<Inputs> {
  const dir = await mkdtemp(join(tmpdir(), 'baler-sinks-'));

  const bb = join(dir, 'busybox');
  await mkdir(join(bb, 'bin'), { recursive: true });
  await copyFile(BUSYBOX, join(bb, 'bin/busybox'));
  await symlink('busybox', join(bb, 'bin/sh'));

  const lower = join(dir, 'lower');
  for (const d of ['app', 'data', 'gonedir/sub', 'opq/sub', 'owned', 'etc', 'replaced-dir']) await mkdir(join(lower, d), { recursive: true });
  await writeFile(join(lower, 'app/data.bin'), 'old data\n');
  await link(join(lower, 'app/data.bin'), join(lower, 'app/hard'));
  await link(join(lower, 'app/data.bin'), join(lower, 'aaa-link')); // sorts before its target
  await writeFile(join(lower, 'data/keep'), 'keep\n');
  await writeFile(join(lower, 'data/gone'), 'gone\n');
  await writeFile(join(lower, 'gonedir/sub/file'), 'x\n');
  await writeFile(join(lower, 'opq/lower-a'), 'a\n');
  await writeFile(join(lower, 'opq/sub/lower-b'), 'b\n');
  await writeFile(join(lower, 'owned/file'), 'mine\n');
  await chmod(join(lower, 'owned/file'), 0o600);
  await chown(join(lower, 'owned/file'), 1234, 2345);
  await writeFile(join(lower, 'etc/greeting'), 'v1\n');
  await writeFile(join(lower, 'replaced-dir/child'), 'child\n');

  const top = join(dir, 'top');
  for (const d of ['data', 'opq', 'bin', 'hl', 'deep/' + 'd'.repeat(60), 'unicode', 'big']) await mkdir(join(top, d), { recursive: true });
  await writeFile(join(top, 'data/.wh.gone'), '');
  await writeFile(join(top, '.wh.gonedir'), '');
  await writeFile(join(top, 'opq/.wh..wh..opq'), '');
  await writeFile(join(top, 'opq/new'), 'new\n');
  await writeFile(join(top, 'bin/suid'), '#!/bin/sh\n');
  await chmod(join(top, 'bin/suid'), 0o4755);
  await writeFile(join(top, 'bin/capped'), 'capabilities\n');
  const setcap = await run('setcap', ['cap_net_raw+ep', join(top, 'bin/capped')]);
  if (setcap.code !== 0) throw new Error(`setcap: ${setcap.stderr}`);
  await symlink('/etc/greeting', join(top, 'bin/abs-link'));
  await writeFile(join(top, 'hl/aa-link'), 'linked\n');
  await link(join(top, 'hl/aa-link'), join(top, 'hl/zz-target'));
  await writeFile(join(top, LONG_PATH), 'long\n');
  await writeFile(join(top, UNICODE), 'non-ascii\n');
  await writeFile(join(top, 'big/file'), 'big ids\n');
  await chown(join(top, 'big/file'), 3_000_000, 3_000_000);
  const fifo = await run('mkfifo', [join(top, 'hl/fifo')]);
  if (fifo.code !== 0) throw new Error(fifo.stderr);

  return {
    dir,
    busyboxTar: await tarOf(bb, join(dir, 'busybox.tar')),
    lowerTar: await tarOf(lower, join(dir, 'lower.tar')),
    topTar: await tarOf(top, join(dir, 'top.tar'), ['--format=pax', '--xattrs', '--xattrs-include=security.*']),
  };
}

export interface TestImage {
  store: FsBlobStore;
  image: Image;
  /** The two-layer image of steps 1–2 alone. */
  built: Image;
}

async function build(store: FsBlobStore, spec: Omit<BuildSpec, 'name'>, base?: BuildResult): Promise<BuildResult> {
  return runBuild(resolveSpec({ name: 'sinks', compression: 'none', created: CREATED, ...spec }, new Date()), {
    store,
    tenant: DEFAULT_TENANT,
    allowDevices: false,
    vm: { run: () => Promise.reject(new Error('no VM step in these builds')) },
    loadBuildImage: async () => {
      if (!base) throw new Error('no base');
      return loadImage(store, base);
    },
  });
}

/** The test image, built into a fresh store under `root`. */
export async function makeTestImage(inputs: Inputs, root: string): Promise<TestImage> {
  const store = await FsBlobStore.create(root);
  const put = async (path: string) => (await store.put(createReadStream(path))).digest;
  const first = await build(store, {
    contents: [{ tar: await put(inputs.busyboxTar) }, { tar: await put(inputs.lowerTar), preserveOwners: true }],
    config: { Env: ['PATH=/bin'] },
  });
  const second = await build(
    store,
    {
      fromImage: { build: 'first' },
      contents: [
        { text: 'new data\n', to: '/app/data.bin' },
        { text: 'v2\n', to: '/etc/greeting', mode: '0640' },
        { text: 'now a file\n', to: '/replaced-dir' },
        { dir: '/newdir', mode: '0711' },
      ],
      config: { Cmd: ['/bin/sh', '-c', CHECK] },
    },
    first,
  );

  const topDigest = await put(inputs.topTar);
  const topInfo = await store.stat(topDigest);
  const base = await loadImage(store, second);
  const image = assembleImage({ architecture: 'amd64', os: 'linux', created: CREATED, history: [{ created: CREATED, created_by: 'GNU tar, by hand' }] }, base, [
    { diffId: topDigest, size: topInfo?.size ?? 0, tarsum: `tarsum.v1+sha256:${'0'.repeat(64)}` },
  ]);
  await storeImage(store, image);
  return { store, image, built: await loadImage(store, second) };
}

/**
 * Write a sink's output to a file; returns the file's digest and size, and fails if the size
 * the sink announced (for Content-Length) differs from what it wrote.
 */
export async function saveOutput(output: { stream: Readable; size?: number }, path: string): Promise<{ digest: Digest; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  const meter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      size += chunk.length;
      done(null, chunk);
    },
  });
  await pipeline(output.stream, meter, createWriteStream(path));
  if (output.size !== undefined && output.size !== size) throw new Error(`${path}: announced ${output.size} bytes, wrote ${size}`);
  return { digest: `sha256:${hash.digest('hex')}`, size };
}
