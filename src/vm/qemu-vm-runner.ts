/**
 * VmRunner on QEMU microVMs: every user script runs in a throwaway VM with no NIC.
 *
 * Per step, in a private temp dir (`$BALER_VM_TMPDIR` or the OS temp dir, `baler-vm-*`):
 *   job.tar      params + scripts (a tar the guest's busybox reads)
 *   lower.sqfs   `mksquashfs - lower.sqfs -tar` of job.lowerTar (layer i under i/)
 *   upper.tar    job.upperTar as it came (raw disk, GNU tar unpacks it in the guest)
 *   scratch.img  sparse ext4 of limits.diskMiB (mke2fs, no journal, no reserved blocks)
 *   out.img      sparse raw disk the guest writes the upper dir to, as a tar
 *   status.img   key=value lines the guest writes last (result, reason, tarBytes)
 *   console.log  the guest's ttyS0 (kernel + /init), for diagnostics
 * The scripts' stdout/stderr come on the guest's ttyS1 = QEMU's stdout → job.onLog.
 * The guest side is src/vm/guest/init; the kernel and initramfs come from
 * scripts/build-vm-assets.mjs (ensureVmAssets).
 */
import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, open, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { StringDecoder } from 'node:string_decoder';
import tar from 'tar-stream';
import { ensureVmAssets, type VmAssets } from '../../scripts/build-vm-assets.mjs';
import type { Logger } from '../log.ts';
import { VmError, VmInputError, VmStartError } from './errors.ts';
import { cpuHasVirtualization, hostTscKhz, runTool, spawnOwned, ToolError } from './host.ts';
import { VmCancelledError, type VmJob, type VmOutcome, type VmResult, type VmRunner } from './vm-runner.ts';

export type VmAccel = 'kvm' | 'tcg';

export interface QemuVmRunnerOptions {
  /** Kernel + initramfs; default: ensureVmAssets() on first use. */
  assets?: VmAssets | (() => Promise<VmAssets>);
  /** Default: $BALER_VM_ACCEL, else 'auto' (KVM only when the CPU shows vmx/svm, /dev/kvm opens and a probe VM boots). */
  accel?: VmAccel | 'auto';
  /** Where per-step temp dirs go. Default: $BALER_VM_TMPDIR, else the OS temp dir. */
  tmpDir?: string;
  /** Default: qemu-system-x86_64 (from PATH). */
  qemuBinary?: string;
  /** Guest vCPUs. Default 1 (fastest boot; TCG gains little from more on small hosts). */
  cpus?: number;
  /** Processes the scripts may have at once; over it the step fails (fork bombs). Default: 1024. */
  pidsMax?: number;
  /** Records the accelerator chosen (info) and each step's timings and outcome (debug). */
  logger?: Logger;
}

const TEMP_PREFIX = 'baler-vm-';
const STATUS_BYTES = 64 * 1024;
/** Seconds a KVM probe boot may take before auto falls back to TCG. */
const KVM_PROBE_SECONDS = 20;
const CONSOLE_TAIL = 4000;

/** Per process: the accelerator auto-detection's answer. */
let autoAccel: Promise<VmAccel> | undefined;

function envAccel(): VmAccel | 'auto' {
  const v = process.env.BALER_VM_ACCEL;
  if (v === undefined || v === '' || v === 'auto') return 'auto';
  if (v === 'kvm' || v === 'tcg') return v;
  throw new VmStartError(`BALER_VM_ACCEL must be kvm, tcg or auto, got '${v}'`);
}

async function kvmOpens(): Promise<boolean> {
  try {
    const fh = await open('/dev/kvm', 'r+');
    await fh.close();
    return true;
  } catch {
    return false;
  }
}

function sanitize(text: string, max: number): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, '').slice(0, max);
}

interface GuestStatus {
  result: 'ok' | 'fail';
  reason: string;
  tarBytes: number;
}

async function readStatus(path: string): Promise<GuestStatus | undefined> {
  const buf = await readFile(path);
  const end = buf.indexOf(0);
  const text = buf.subarray(0, end < 0 ? buf.length : end).toString('utf8');
  const fields = new Map<string, string>();
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) fields.set(line.slice(0, eq), line.slice(eq + 1));
  }
  if (fields.get('end') !== '1') return undefined;
  const result = fields.get('result');
  if (result !== 'ok' && result !== 'fail') return undefined;
  const tarBytes = Number(fields.get('tarBytes') ?? '0');
  return {
    result,
    reason: sanitize(fields.get('reason') ?? '', 1000),
    tarBytes: Number.isSafeInteger(tarBytes) && tarBytes >= 0 ? tarBytes : 0,
  };
}

async function tail(path: string, bytes: number): Promise<string> {
  try {
    const buf = await readFile(path);
    return sanitize(buf.subarray(Math.max(0, buf.length - bytes)).toString('utf8'), bytes);
  } catch {
    return '';
  }
}

/** A tar holding `name → content` files, written to `path` (what the guest's busybox tar reads). */
async function writeJobTar(path: string, files: Record<string, string>): Promise<void> {
  const pack = tar.pack();
  const done = pipeline(pack, createWriteStream(path));
  for (const [name, content] of Object.entries(files)) {
    pack.entry({ name, mode: 0o644, mtime: new Date(0), uid: 0, gid: 0 }, content);
  }
  pack.finalize();
  await done;
}

/** Pads a raw disk image to a multiple of 512 bytes (QEMU ignores a partial last sector). */
async function padToSector(path: string): Promise<number> {
  const { size } = await stat(path);
  const padded = Math.ceil(size / 512) * 512;
  if (padded !== size) await truncate(path, padded);
  return size;
}

function validate(job: VmJob): void {
  const { diskMiB, memoryMiB, timeoutSeconds } = job.limits;
  const bad = (what: string, v: number, min: number): never => {
    throw new VmInputError(`${what} must be an integer of at least ${min}, got ${v}`);
  };
  if (!Number.isSafeInteger(diskMiB) || diskMiB < 8) bad('limits.diskMiB', diskMiB, 8);
  if (!Number.isSafeInteger(memoryMiB) || memoryMiB < 128) bad('limits.memoryMiB', memoryMiB, 128);
  if (!(timeoutSeconds > 0) || !Number.isFinite(timeoutSeconds)) bad('limits.timeoutSeconds', timeoutSeconds, 1);
  if (!Number.isSafeInteger(job.clock) || job.clock < 0) throw new VmInputError(`clock must be epoch seconds, got ${job.clock}`);
  if (!Number.isSafeInteger(job.lowerCount) || job.lowerCount < 0) throw new VmInputError(`lowerCount must be >= 0, got ${job.lowerCount}`);
}

export class QemuVmRunner implements VmRunner {
  readonly #options: QemuVmRunnerOptions;
  #assets: Promise<VmAssets> | undefined;
  #accelLogged = false;

  constructor(options: QemuVmRunnerOptions = {}) {
    this.#options = options;
  }

  get tmpDir(): string {
    return this.#options.tmpDir ?? (process.env.BALER_VM_TMPDIR || tmpdir());
  }

  /** Kernel and initramfs paths (built into the cache on first use). */
  assets(): Promise<VmAssets> {
    if (!this.#assets) {
      const a = this.#options.assets;
      this.#assets = (typeof a === 'function' ? a() : a ? Promise.resolve(a) : ensureVmAssets()).catch((err: unknown) => {
        this.#assets = undefined;
        throw new VmStartError(`building the VM kernel/initramfs failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      });
    }
    return this.#assets;
  }

  /** The accelerator steps run with: the option, else BALER_VM_ACCEL, else auto-detected (once per process). */
  async accel(): Promise<VmAccel> {
    const wanted = this.#options.accel ?? envAccel();
    if (wanted !== 'auto') {
      if (!this.#accelLogged) this.#options.logger?.info({ accel: wanted, how: 'configured' }, `VM accelerator: ${wanted}`);
      this.#accelLogged = true;
      return wanted;
    }
    autoAccel ??= this.#detectAccel();
    const accel = await autoAccel;
    if (!this.#accelLogged) this.#options.logger?.info({ accel, how: 'auto' }, `VM accelerator: ${accel}`);
    this.#accelLogged = true;
    return accel;
  }

  async #detectAccel(): Promise<VmAccel> {
    if (!cpuHasVirtualization() || !(await kvmOpens())) return 'tcg';
    // /dev/kvm can be there and still not work (e.g. kvm_pvm: stock kernels stall): boot one.
    try {
      const result = await this.#run(
        { lowerCount: 0, shadowSetup: false, clock: 0, limits: { diskMiB: 16, memoryMiB: 128, timeoutSeconds: KVM_PROBE_SECONDS } },
        'kvm',
      );
      const ok = result.outcome.ok;
      await result.dispose();
      return ok ? 'kvm' : 'tcg';
    } catch {
      return 'tcg';
    }
  }

  async run(job: VmJob): Promise<VmResult> {
    validate(job);
    if (job.signal?.aborted) throw new VmCancelledError();
    const accel = await this.accel();
    return this.#run(job, accel);
  }

  async #run(job: VmJob, accel: VmAccel): Promise<VmResult> {
    const assets = await this.assets();
    if (job.signal?.aborted) throw new VmCancelledError();
    const dir = await mkdtemp(join(this.tmpDir, TEMP_PREFIX));
    let disposed = false;
    const dispose = async (): Promise<void> => {
      if (disposed) return;
      disposed = true;
      await rm(dir, { recursive: true, force: true });
    };
    try {
      await writeFile(join(dir, 'owner'), `${process.pid}\n`);
      const { outcome, tarBytes } = await this.#step(dir, job, assets, accel);
      const outPath = join(dir, 'out.img');
      return {
        outcome,
        openUpperTar: async (): Promise<Readable> => {
          if (!outcome.ok) throw new VmError(`the VM step failed (${outcome.reason}): there is no upper tar`);
          if (disposed) throw new VmError('the VM step was disposed: its upper tar is gone');
          return createReadStream(outPath, { start: 0, end: tarBytes - 1 });
        },
        dispose,
      };
    } catch (err) {
      await dispose();
      throw err;
    }
  }

  async #step(dir: string, job: VmJob, assets: VmAssets, accel: VmAccel): Promise<{ outcome: VmOutcome; tarBytes: number }> {
    const { diskMiB, memoryMiB, timeoutSeconds } = job.limits;
    const signal = job.signal;
    const disk = (name: string): string => join(dir, name);
    const drives: string[] = [];
    const addDrive = (id: string, file: string, readonly: boolean): void => {
      drives.push(
        '-drive', `id=${id},file=${file},format=raw,if=none,${readonly ? 'readonly=on' : 'cache=unsafe'}`,
        '-device', `virtio-blk-device,drive=${id},serial=${id}`,
      );
    };

    // Lower layers → squashfs (keeps owners, modes, devices, hard links, xattrs; rootless).
    let lowerCount = 0;
    if (job.lowerTar && job.lowerCount > 0) {
      const input = await job.lowerTar();
      try {
        await runTool('mksquashfs', ['-', disk('lower.sqfs'), '-tar', '-noI', '-noD', '-noF', '-noX', '-no-progress', '-quiet'], { input, signal });
        lowerCount = job.lowerCount;
      } catch (err) {
        if (err instanceof VmCancelledError) throw err;
        if (err instanceof ToolError && err.stderr.trim() === '' && (await stat(disk('lower.sqfs')).catch(() => undefined)) === undefined) {
          // An empty stream (no entries at all): mksquashfs exits 1 without a word. No lower layers then.
        } else {
          throw new VmInputError(`the base layers could not be turned into a squashfs: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
        }
      }
      if (lowerCount > 0) addDrive('lower', disk('lower.sqfs'), true);
    }

    // This build's contents: the tar as it is, a raw disk.
    let hasUpper = false;
    if (job.upperTar) {
      try {
        await pipeline(await job.upperTar(), createWriteStream(disk('upper.tar')), { signal });
      } catch (err) {
        if (signal?.aborted) throw new VmCancelledError();
        throw new VmInputError(`reading this build's contents failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      }
      hasUpper = (await padToSector(disk('upper.tar'))) > 0;
      if (hasUpper) addDrive('upper', disk('upper.tar'), true);
    }
    if (signal?.aborted) throw new VmCancelledError();

    const pidsMax = this.#options.pidsMax ?? 1024;
    const params = {
      CLOCK: job.clock,
      SHADOW_SETUP: job.shadowSetup ? 1 : 0,
      LOWER_COUNT: lowerCount,
      HAS_UPPER: hasUpper ? 1 : 0,
      HAS_RUN_AS_ROOT: job.runAsRoot !== undefined ? 1 : 0,
      HAS_EXTRA: job.extraCommands !== undefined ? 1 : 0,
      PIDS_MAX: pidsMax,
      MEMORY_MIB: memoryMiB,
      DISK_MIB: diskMiB,
      TRACE: process.env.BALER_VM_TRACE === '1' ? 1 : 0,
    };
    const files: Record<string, string> = {
      params: Object.entries(params).map(([k, v]) => `${k}=${v}\n`).join(''),
    };
    if (job.runAsRoot !== undefined) files.runAsRoot = job.runAsRoot;
    if (job.extraCommands !== undefined) files.extraCommands = job.extraCommands;
    await writeJobTar(disk('job.tar'), files);
    await padToSector(disk('job.tar'));
    addDrive('job', disk('job.tar'), true);

    // Scratch ext4 (the upper dir's home: its size is the disk limit), output and status disks.
    await writeFile(disk('scratch.img'), '');
    await truncate(disk('scratch.img'), diskMiB * 1024 * 1024);
    try {
      await runTool('mke2fs', ['-q', '-F', '-t', 'ext4', '-O', '^has_journal', '-m', '0', '-E', 'root_owner=0:0', disk('scratch.img')], { signal });
    } catch (err) {
      if (err instanceof VmCancelledError) throw err;
      throw new VmStartError(`mke2fs failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    addDrive('scratch', disk('scratch.img'), false);
    // The layer as a tar: room for the whole scratch disk plus headers (sparse until written).
    await writeFile(disk('out.img'), '');
    await truncate(disk('out.img'), (2 * diskMiB + 64) * 1024 * 1024);
    addDrive('out', disk('out.img'), false);
    await writeFile(disk('status.img'), Buffer.alloc(STATUS_BYTES));
    addDrive('status', disk('status.img'), false);

    const append = [
      'console=ttyS0',
      'panic=-1',
      'reboot=t',
      'quiet',
      `tsc_early_khz=${hostTscKhz()}`,
      'tsc=reliable',
      'cryptomgr.notests',
      'noreplace-smp',
    ].join(' ');
    const rtcBase = new Date(job.clock * 1000).toISOString().slice(0, 19);
    const args = [
      '-M', 'microvm,pit=off,pic=off,rtc=on',
      // TCG's default CPU (qemu64) lacks SSE4.2/AVX: binaries built for x86-64-v2/v3 would die
      // with SIGILL. `max` is every feature TCG emulates; it boots as fast.
      ...(accel === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', 'tcg', '-cpu', 'max']),
      '-smp', String(this.#options.cpus ?? 1),
      '-m', String(memoryMiB),
      '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
      '-nic', 'none',
      '-rtc', `base=${rtcBase},clock=vm`,
      '-kernel', assets.kernel,
      '-initrd', assets.initrd,
      '-append', append,
      '-chardev', `file,id=con,path=${disk('console.log')}`,
      '-serial', 'chardev:con',
      '-chardev', 'stdio,id=log,signal=off',
      '-device', 'isa-serial,chardev=log,iobase=0x2f8,irq=3',
      ...drives,
    ];

    const qemu = this.#options.qemuBinary ?? 'qemu-system-x86_64';
    const bootedAt = Date.now();
    const child = spawnOwned(qemu, args, ['ignore', 'pipe', 'pipe']);
    let timedOut = false;
    let cancelled = false;
    let spawnError: Error | undefined;
    let stderr = '';
    const decoder = new StringDecoder('utf8');
    child.stdout?.on('data', (chunk: Buffer) => {
      const text = decoder.write(chunk);
      if (text && job.onLog) job.onLog(text);
    });
    child.stderr?.setEncoding('utf8').on('data', (s: string) => {
      if (stderr.length < 16384) stderr += s;
    });
    child.on('error', (err) => {
      spawnError = err;
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutSeconds * 1000);
    const onAbort = (): void => {
      cancelled = true;
      child.kill('SIGKILL');
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    if (signal?.aborted) onAbort();
    let code: number | null;
    try {
      [code] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
    const rest = decoder.end();
    if (rest && job.onLog) job.onLog(rest);

    this.#options.logger?.debug({ accel, vmMs: Date.now() - bootedAt, exitCode: code, timedOut, cancelled }, 'VM step ended');
    if (cancelled) throw new VmCancelledError();
    if (spawnError) throw new VmStartError(`cannot start ${qemu}: ${spawnError.message}`, { cause: spawnError });
    if (timedOut) return { outcome: { ok: false, reason: `timed out after ${timeoutSeconds} s` }, tarBytes: 0 };

    const status = await readStatus(disk('status.img'));
    if (!status) {
      const console = await tail(disk('console.log'), CONSOLE_TAIL);
      if (code !== 0) {
        throw new VmStartError(`${qemu} failed (exit code ${code}): ${sanitize(stderr.trim(), 2000) || 'no message'}`, { console });
      }
      // The guest stopped on its own without a result: a script rebooted it, or the kernel panicked.
      const last = console.split('\n').map((l) => l.trim()).filter((l) => l && !/reboot: Restarting system/.test(l)).pop() ?? '';
      const oom = /Out of memory|oom-kill/i.test(console);
      return {
        outcome: {
          ok: false,
          reason: oom ? 'out of memory: the VM ran out of memory' : `the VM stopped before the step finished${last ? ` (${last.slice(0, 300)})` : ''}`,
        },
        tarBytes: 0,
      };
    }
    if (status.result === 'fail') return { outcome: { ok: false, reason: status.reason || 'the VM step failed' }, tarBytes: 0 };
    const outSize = (await stat(disk('out.img'))).size;
    if (status.tarBytes < 1024 || status.tarBytes > outSize) {
      throw new VmError(`the guest reported an impossible layer size (${status.tarBytes} bytes)`, { console: await tail(disk('console.log'), CONSOLE_TAIL) });
    }
    return { outcome: { ok: true }, tarBytes: status.tarBytes };
  }

  /**
   * Removes temp dirs of steps whose process is gone (a worker that was killed cannot dispose).
   * Safe with several workers sharing the temp dir: a dir whose owner pid lives is kept.
   */
  static async sweepStaleTempDirs(tmpDir: string = process.env.BALER_VM_TMPDIR || tmpdir()): Promise<string[]> {
    const removed: string[] = [];
    for (const name of await readdir(tmpDir).catch(() => [] as string[])) {
      if (!name.startsWith(TEMP_PREFIX)) continue;
      const path = join(tmpDir, name);
      const pid = Number((await readFile(join(path, 'owner'), 'utf8').catch(() => '')).trim());
      let alive = false;
      if (Number.isSafeInteger(pid) && pid > 0) {
        try {
          process.kill(pid, 0);
          alive = true;
        } catch (err) {
          alive = (err as NodeJS.ErrnoException).code === 'EPERM';
        }
      } else {
        // No owner file yet: only a dir older than a minute is stale.
        const st = await stat(path).catch(() => undefined);
        alive = st !== undefined && Date.now() - st.mtimeMs < 60_000;
      }
      if (!alive) {
        await rm(path, { recursive: true, force: true });
        removed.push(path);
      }
    }
    return removed;
  }
}
