/**
 * zstd, xz and bzip2 in a sandboxed build run as children of the worker's main thread
 * (src/sandbox/remote-decompress.ts): a build decompresses through them exactly as in this
 * thread, and a build stopped (cancel, time limit: the same abort) while one runs leaves no
 * process behind, neither running nor a zombie nobody reaps.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { BuildDeps } from '../../src/builds/build-deps.ts';
import { runBuild } from '../../src/builds/run-build.ts';
import { resolveSpec } from '../../src/builds/spec.ts';
import type { Digest } from '../../src/digest.ts';
import { BuildSandbox, SandboxStoppedError } from '../../src/sandbox/build-sandbox.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';
import { run } from '../support/run.ts';

let dir: string;
let store: FsBlobStore;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'baler-decompressor-'));
  store = await FsBlobStore.create(join(dir, 'store'));
}, 60_000);

afterAll(async () => rm(dir, { recursive: true, force: true }));

const deps = (extra: Partial<BuildDeps> = {}): BuildDeps => ({
  store,
  vm: { run: () => Promise.reject(new Error('no VM in this test')) },
  loadBuildImage: () => Promise.reject(new Error('no base builds in this test')),
  tenant: 'default',
  allowDevices: false,
  ...extra,
});

function sandbox(): BuildSandbox {
  return new BuildSandbox({ store: { store: 'fs', dataDir: join(dir, 'store'), s3: { bucket: '', region: '', endpoint: undefined } }, heapMiB: 256 });
}

const noBaseImages = { buildId: 'test', buildImage: () => Promise.reject(new Error('no base builds in this test')) };

async function putFile(path: string): Promise<Digest> {
  return (await store.put(Readable.from([await readFile(path)]))).digest;
}

/** This process's children named `name`, with their state (`R`, `S`, `Z`, …). */
function childrenNamed(name: string): Array<{ pid: number; state: string }> {
  const found: Array<{ pid: number; state: string }> = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    // pid (comm) state ppid …: comm may hold spaces, so split after its closing parenthesis.
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (comm === name && Number(ppid) === process.pid) found.push({ pid: Number(entry), state: state as string });
  }
  return found;
}

it('decompresses zstd, xz and bzip2 contents in the main thread, with the result of a build in this thread', async () => {
  const root = join(dir, 'root');
  await mkdir(join(root, 'etc'), { recursive: true });
  await writeFile(join(root, 'etc/motd'), Buffer.alloc(2 * 1024 * 1024, 'sandboxed '));
  const box = sandbox();
  try {
    for (const flag of ['--zstd', '-J', '-j']) {
      const tar = join(dir, `contents${flag}.tar`);
      await run('tar', ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', flag, '-cf', tar, '-C', root, '.']);
      const spec = resolveSpec({ name: 'sandbox/decompress', compression: 'none', contents: [{ tar: await putFile(tar) }] }, new Date(0));
      expect(await box.run(spec, deps(), noBaseImages)).toEqual(await runBuild(spec, deps()));
    }
  } finally {
    await box.close();
  }
  expect(childrenNamed('zstd').concat(childrenNamed('xz'), childrenNamed('bzip2'))).toEqual([]);
}, 120_000);

it('leaves no xz behind, running or zombie, when the build is stopped while xz decompresses', async () => {
  // ~900 MB of zeros (under the decompression budget's 1 GiB floor): seconds of xz.
  const bomb = join(dir, 'zeros.xz');
  await run('sh', ['-c', `head -c 900M /dev/zero | xz -0 -T1 > '${bomb}'`], { timeoutMs: 120_000 });
  const spec = resolveSpec({ name: 'sandbox/stop', compression: 'none', contents: [{ tar: await putFile(bomb) }] }, new Date(0));
  const box = sandbox();
  const stop = new AbortController();
  try {
    const build = box.run(spec, deps({ signal: stop.signal }), noBaseImages).catch((err: unknown) => err);
    const started = Date.now();
    while (childrenNamed('xz').length === 0) {
      if (Date.now() - started > 30_000) throw new Error('xz never started');
      await new Promise((r) => setTimeout(r, 10));
    }
    stop.abort();
    expect(await build).toBeInstanceOf(SandboxStoppedError);
    const stopped = Date.now();
    while (childrenNamed('xz').length > 0 && Date.now() - stopped < 5000) await new Promise((r) => setTimeout(r, 20));
    expect(childrenNamed('xz')).toEqual([]);
  } finally {
    await box.close();
  }
}, 180_000);
