/**
 * The baler side of `bench/vm.ts`: the base image (a pure build of a busybox-static root), the
 * VM-overhead measurement (QemuVmRunner.run() of `true`) and the whole `fromImage` + `runAsRoot`
 * build through runBuild() with a fresh FsBlobStore per run.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { copyFile, mkdir, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pino, type Logger } from 'pino';
import { DEFAULT_TENANT } from '../../src/builds/tenant.ts';
import { imageOutput } from '../../src/builds/build-archive.ts';
import type { BuildResult } from '../../src/builds/build-result.ts';
import { SILENT_OBSERVER } from '../../src/builds/build-observer.ts';
import { runBuild } from '../../src/builds/run-build.ts';
import { resolveSpec, type BuildSpec } from '../../src/builds/spec.ts';
import type { Image } from '../../src/image/image.ts';
import { loadImage } from '../../src/image/stored-image.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';
import type { VmJob, VmRunner } from '../../src/vm/vm-runner.ts';
import { run } from '../../test/support/run.ts';
import { elapsedMs, msBetween } from './stats.ts';

export const BUSYBOX = '/bin/busybox'; // Debian's busybox-static

/**
 * The change both sides make, as one `sh` script. Only `/bin/sh` is linked in the base, so every
 * other command goes through `busybox` (on PATH in both: /bin for buildah, the guest's busybox
 * for baler).
 */
export const CHANGE_SCRIPT = [
  'set -e',
  'busybox mkdir -p /etc /home/bench',
  '[ -f /etc/passwd ] || : > /etc/passwd',
  "echo 'bench:x:1000:1000:bench:/home/bench:/bin/sh' >> /etc/passwd",
  "echo 'written by bench' > /home/bench/hello.txt",
  'busybox chown -R 1000:1000 /home/bench',
].join('\n');

export const BASE_NAME = 'bench-base';
const BASE_BUILD_ID = 'bench-base-build';

/** A tar (GNU tar, numeric owners) with /bin/busybox (`busybox`: the host's) and /bin/sh -> busybox, under `dir`. */
export async function busyboxRootTar(dir: string, busybox = BUSYBOX, name = 'busybox-root'): Promise<string> {
  const root = join(dir, name);
  await mkdir(join(root, 'bin'), { recursive: true });
  await copyFile(busybox, join(root, 'bin/busybox'));
  await symlink('busybox', join(root, 'bin/sh'));
  const tar = join(dir, `${name}.tar`);
  const result = await run('tar', ['--numeric-owner', '-C', root, '-cf', tar, '.'], { timeoutMs: 60_000 });
  if (result.code !== 0) throw new Error(`tar failed: ${result.stderr}`);
  await rm(root, { recursive: true, force: true });
  return tar;
}

/** Pure builds never reach the VM. */
const NO_VM: VmRunner = {
  run: () => Promise.reject(new Error('a pure build must not use the VM')),
};

export interface BaleredBase {
  store: FsBlobStore;
  result: BuildResult;
  image: Image;
  /** Path of the base build's docker-archive (uncompressed) in the store. */
  archivePath: string;
}

/**
 * In `storeDir`: a fresh store, the busybox tar uploaded, and the base image built from it (pure),
 * for `architecture` (unset: the spec's default, amd64).
 */
export async function buildBase(storeDir: string, busyboxTarPath: string, architecture?: string): Promise<BaleredBase> {
  const store = await FsBlobStore.create(storeDir);
  const blob = await store.put(createReadStream(busyboxTarPath));
  const spec: BuildSpec = {
    name: BASE_NAME,
    tag: '1',
    contents: [{ tar: blob.digest }],
    config: { Cmd: ['/bin/sh'], Env: ['PATH=/bin'] },
    compression: 'none',
    ...(architecture ? { architecture } : {}),
  };
  const result = await runBuild(resolveSpec(spec, new Date(0)), {
    store,
    vm: NO_VM,
    tenant: DEFAULT_TENANT,
    allowDevices: false,
    loadBuildImage: () => Promise.reject(new Error('the base has no base')),
  });
  const image = await loadImage(store, result);
  return { store, result, image, archivePath: await saveArchive(store, result, spec, join(storeDir, 'base-archive.tar')) };
}

/** The build's archive (assembled from the store, as a download is) written to `path`. */
export async function saveArchive(store: FsBlobStore, result: BuildResult, spec: BuildSpec, path: string): Promise<string> {
  const resolved = resolveSpec(spec, new Date(0));
  const out = await imageOutput(await loadImage(store, result), resolved, result.archive.format, result.archive.compression, store);
  await pipeline(out.stream, createWriteStream(path));
  return path;
}

/** The change as a baler spec over the base build (for `architecture`; unset: amd64). */
export function changeSpec(architecture?: string): BuildSpec {
  return {
    name: 'bench-change',
    tag: '1',
    fromImage: { build: BASE_BUILD_ID },
    runAsRoot: CHANGE_SCRIPT,
    compression: 'none',
    ...(architecture ? { architecture } : {}),
  };
}

export interface BuildRun {
  /** runBuild() call → archive stored. */
  ms: number;
  /** call → the VM step starts (base image loaded, contents resolved). */
  beforeVmMs: number;
  /** the VM step: upper input + lowers written, QEMU run, upper tar stored, dispose(), upper → tree. */
  vmStepMs: number;
  /** the new layer, config, legacy metadata and the archive, stored. */
  afterVmMs: number;
  result: BuildResult;
  archivePath: string;
  log: string;
}

/**
 * One whole baler build, in a fresh store under `workDir` (the base is built there first,
 * untimed: in reality it is already stored). Timed: runBuild() from the call to the archive
 * stored. The caller removes `workDir`. `architecture` (unset: amd64) must be `vm`'s platform's.
 */
export async function timedBalerBuild(workDir: string, busyboxTarPath: string, vm: VmRunner, architecture?: string): Promise<BuildRun> {
  const storeDir = join(workDir, 'store');
  const base = await buildBase(storeDir, busyboxTarPath, architecture);
  const spec = resolveSpec(changeSpec(architecture), new Date(0));
  let log = '';
  const marks = new Map<string, bigint>();
  const t0 = process.hrtime.bigint();
  const result = await runBuild(spec, {
    store: base.store,
    vm,
    tenant: DEFAULT_TENANT,
    allowDevices: false,
    loadBuildImage: async (id) => {
      if (id !== BASE_BUILD_ID) throw new Error(`unknown base build ${id}`);
      return loadImage(base.store, base.result);
    },
    observer: {
      ...SILENT_OBSERVER,
      log: (text) => {
        log += text;
      },
      stepStarted: (step) => {
        if (!marks.has(step)) marks.set(step, process.hrtime.bigint());
        return () => {};
      },
    },
  });
  const t1 = process.hrtime.bigint();
  const vmStart = marks.get('vm');
  const vmEnd = marks.get('layer');
  if (vmStart === undefined || vmEnd === undefined) throw new Error(`runBuild reported no 'vm'/'layer' steps (saw: ${[...marks.keys()].join(', ')})`);
  return {
    ms: msBetween(t0, t1),
    beforeVmMs: msBetween(t0, vmStart),
    vmStepMs: msBetween(vmStart, vmEnd),
    afterVmMs: msBetween(vmEnd, t1),
    result,
    archivePath: await saveArchive(base.store, result, changeSpec(architecture), join(workDir, 'archive.tar')),
    log,
  };
}

/** The VM step's job for the overhead measurement: `true`, no lowers, no contents. */
export function trivialJob(): VmJob {
  return {
    lowerCount: 0,
    runAsRoot: 'true',
    shadowSetup: false,
    clock: 1,
    limits: { diskMiB: 1024, memoryMiB: 512, timeoutSeconds: 600 },
  };
}

export interface VmRun {
  /** run() call → upper tar fully read. */
  ms: number;
  /** run() call → dispose() done. */
  withDisposeMs: number;
  upperBytes: number;
}

/** One VM step of `true`: timed from the run() call until the upper tar is fully read; then dispose(). */
export async function timedVmOverhead(vm: VmRunner): Promise<VmRun> {
  const t0 = process.hrtime.bigint();
  const result = await vm.run(trivialJob());
  let upperBytes = 0;
  let ms: number;
  try {
    if (!result.outcome.ok) throw new Error(`trivial VM step failed: ${result.outcome.reason}`);
    upperBytes = await drain(await result.openUpperTar());
    ms = elapsedMs(t0);
  } finally {
    await result.dispose();
  }
  return { ms, withDisposeMs: elapsedMs(t0), upperBytes };
}

async function drain(stream: Readable): Promise<number> {
  let n = 0;
  for await (const chunk of stream) n += (chunk as Buffer).length;
  return n;
}

/** A logger for QemuVmRunner that keeps its records (to find the accelerator it chose) and prints nothing. */
export function recordingLogger(level: string): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const logger = pino({ name: 'bench-vm', level }, { write: (s: string) => void lines.push(s) });
  return { logger, lines };
}
