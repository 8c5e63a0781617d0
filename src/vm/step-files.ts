/**
 * The files of one VM step, in a private temp dir (`baler-vm-*` under the runner's tmpDir):
 *   owner        the pid of the process that made it (sweepStaleTempDirs keeps live owners' dirs)
 *   job.tar      params + scripts (a tar the guest's busybox reads)
 *   lower.sqfs   `mksquashfs - lower.sqfs -tar` of job.lowerTar (layer i under i/)
 *   upper.tar    job.upperTar as it came (raw disk, GNU tar unpacks it in the guest)
 *   scratch.img  sparse ext4 of limits.diskMiB (mke2fs, no journal, no reserved blocks)
 *   out.img      sparse raw disk the guest writes the upper dir to, as a tar
 *   status.img   key=value lines the guest writes last (result, reason, tarBytes)
 *   reserved     the bytes the step's files may come to, held on the temp dir (disk-admission.ts)
 *
 * The guest's console (ttyS0) is not a file: the host keeps its tail in memory (console-tail.ts).
 *
 * A cold step writes the inputs first and attaches what exists. A warm VM is booted with every
 * file attached (the inputs empty and sparse, of a fixed capacity); the job's inputs are written
 * into those same files (same inodes: QEMU holds them open) when it arrives. QEMU takes a disk's
 * size when it opens the file: a job that took a VM whose QEMU was still starting may have
 * shortened a file at that moment, so the guest checks the sizes before it starts the job.
 */
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { VmInputError, VmStartError } from './errors.ts';
import { runTool, ToolError } from './host.ts';
import { VmCancelledError, type VmJob } from './vm-runner.ts';

export const TEMP_PREFIX = 'baler-vm-';
export const MiB = 1024 * 1024;
const STATUS_BYTES = 64 * 1024;
/**
 * Capacity of a warm VM's input disks (job, lower, upper): read-only to the guest and sparse,
 * so only what the job writes into them takes room.
 */
export const WARM_INPUT_BYTES = 2 ** 40;

export const FILES = {
  owner: 'owner',
  job: 'job.tar',
  lower: 'lower.sqfs',
  upper: 'upper.tar',
  scratch: 'scratch.img',
  out: 'out.img',
  status: 'status.img',
  reserved: 'reserved',
} as const;

/** The upper dir as a tar: room for the whole scratch disk plus headers (sparse until written). */
function outBytes(diskMiB: number): number {
  return (2 * diskMiB + 64) * MiB;
}

/**
 * The most the disks of a VM with a `diskMiB` scratch disk can take on the host: sparse as
 * they start, root in the guest can fill every one (a raw device as well as its filesystem).
 */
export function diskCapacityBytes(diskMiB: number): number {
  return diskMiB * MiB + outBytes(diskMiB) + STATUS_BYTES;
}

/** A fresh step dir with its owner file. */
export async function makeStepDir(tmpDir: string): Promise<string> {
  const dir = await mkdtemp(join(tmpDir, TEMP_PREFIX));
  await writeFile(join(dir, FILES.owner), `${process.pid}\n`);
  return dir;
}

/**
 * Whether the process that made the step dir at `path` still runs; undefined when the dir has
 * no owner file (yet). Another user's live process counts as running.
 */
export async function stepDirOwnerAlive(path: string): Promise<boolean | undefined> {
  const pid = Number((await readFile(join(path, FILES.owner), 'utf8').catch(() => '')).trim());
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A sparse file of `bytes` (made, or grown when smaller). */
export async function sparseFile(path: string, bytes: number): Promise<void> {
  const size = (await stat(path).catch(() => undefined))?.size;
  if (size === undefined) await writeFile(path, '');
  if ((size ?? 0) < bytes) await truncate(path, bytes);
}

/** A tar holding `name → content` files, written to `path` (what the guest's busybox tar reads). */
async function writeTarOf(path: string, files: Record<string, string>): Promise<void> {
  const pack = tar.pack();
  const done = pipeline(pack, createWriteStream(path));
  for (const [name, content] of Object.entries(files)) {
    pack.entry({ name, mode: 0o644, mtime: new Date(0), uid: 0, gid: 0 }, content);
  }
  pack.finalize();
  await done;
}

/** Pads a raw disk image to a multiple of 512 bytes (QEMU ignores a partial last sector). */
export async function padToSector(path: string): Promise<number> {
  const { size } = await stat(path);
  const padded = Math.ceil(size / 512) * 512;
  if (padded !== size) await truncate(path, padded);
  return size;
}

export interface WrittenInputs {
  /** Layer dirs in lower.sqfs (0: no lower disk is used). */
  lowerCount: number;
  /** Whether upper.tar holds anything. */
  hasUpper: boolean;
  /** Bytes written to each input file (0 when not written). */
  bytes: { job: number; lower: number; upper: number };
}

/**
 * Writes the job's inputs into `dir`: lower.sqfs, upper.tar, then job.tar (its params say what
 * the others hold). An existing file is rewritten in place (O_TRUNC: the same inode).
 */
export async function writeInputs(dir: string, job: VmJob, opts: { pidsMax: number; trace: boolean }): Promise<WrittenInputs> {
  const signal = job.signal;
  const path = (name: string): string => join(dir, name);
  const size = async (name: string): Promise<number> => (await stat(path(name)).catch(() => undefined))?.size ?? 0;

  // Lower layers → squashfs (keeps owners, modes, devices, hard links, xattrs; rootless).
  let lowerCount = 0;
  if (job.lowerTar && job.lowerCount > 0) {
    const input = await job.lowerTar();
    try {
      // -noappend: a warm VM's lower.sqfs exists already (and is no squashfs yet).
      await runTool('mksquashfs', ['-', path(FILES.lower), '-tar', '-noappend', '-noI', '-noD', '-noF', '-noX', '-no-progress', '-quiet'], { input, signal });
      lowerCount = job.lowerCount;
    } catch (err) {
      if (err instanceof VmCancelledError) throw err;
      if (err instanceof ToolError && err.stderr.trim() === '' && (await stat(path(FILES.lower)).catch(() => undefined)) === undefined) {
        // An empty stream (no entries at all): mksquashfs exits 1 without a word. No lower layers then.
      } else {
        throw new VmInputError(`the base layers could not be turned into a squashfs: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      }
    }
  }

  // This build's contents: the tar as it is, a raw disk.
  let upperBytes = 0;
  if (job.upperTar) {
    try {
      await pipeline(await job.upperTar(), createWriteStream(path(FILES.upper)), { signal });
    } catch (err) {
      if (signal?.aborted) throw new VmCancelledError();
      throw new VmInputError(`reading this build's contents failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    upperBytes = await size(FILES.upper);
  }
  if (signal?.aborted) throw new VmCancelledError();

  const hasUpper = upperBytes > 0;
  const params = {
    CLOCK: job.clock,
    SHADOW_SETUP: job.shadowSetup ? 1 : 0,
    LOWER_COUNT: lowerCount,
    HAS_UPPER: hasUpper ? 1 : 0,
    HAS_RUN_AS_ROOT: job.runAsRoot !== undefined ? 1 : 0,
    HAS_EXTRA: job.extraCommands !== undefined ? 1 : 0,
    PIDS_MAX: opts.pidsMax,
    MEMORY_MIB: job.limits.memoryMiB,
    DISK_MIB: job.limits.diskMiB,
    TRACE: opts.trace ? 1 : 0,
  };
  const files: Record<string, string> = {
    params: Object.entries(params)
      .map(([k, v]) => `${k}=${v}\n`)
      .join(''),
  };
  if (job.runAsRoot !== undefined) files.runAsRoot = job.runAsRoot;
  if (job.extraCommands !== undefined) files.extraCommands = job.extraCommands;
  await writeTarOf(path(FILES.job), files);

  return {
    lowerCount,
    hasUpper,
    bytes: { job: await size(FILES.job), lower: lowerCount > 0 ? await size(FILES.lower) : 0, upper: upperBytes },
  };
}

/**
 * An empty ext4 of `fsMiB` in `path` (the upper dir's home: its size is the disk limit). The
 * file is made `deviceMiB` long first when it does not exist; a larger device keeps the
 * filesystem at `fsMiB` (a warm VM's scratch disk has the pool's size).
 */
export async function makeScratch(path: string, fsMiB: number, opts: { deviceMiB?: number; signal?: AbortSignal } = {}): Promise<void> {
  const deviceMiB = opts.deviceMiB ?? fsMiB;
  await sparseFile(path, deviceMiB * MiB);
  const size = deviceMiB === fsMiB ? [] : [`${fsMiB}M`];
  try {
    await runTool('mke2fs', ['-q', '-F', '-t', 'ext4', '-O', '^has_journal', '-m', '0', '-E', 'root_owner=0:0', path, ...size], { signal: opts.signal });
  } catch (err) {
    if (err instanceof VmCancelledError) throw err;
    throw new VmStartError(`mke2fs failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

/** The output and status disks (sparse zeros). */
export async function makeOutputFiles(dir: string, diskMiB: number): Promise<void> {
  await sparseFile(join(dir, FILES.out), outBytes(diskMiB));
  await writeFile(join(dir, FILES.status), Buffer.alloc(STATUS_BYTES));
}
