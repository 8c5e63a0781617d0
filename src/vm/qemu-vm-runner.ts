/**
 * VmRunner on QEMU microVMs: every user script runs in a throwaway VM with no NIC.
 *
 * A step runs in one of two ways, with the same guest, the same disks and the same result:
 *  - cold: its inputs are written to a private temp dir (step-files.ts), then a VM boots with
 *    them attached, runs the step and exits;
 *  - warm (poolSize > 0): a VM from the pool (vm-pool.ts), booted earlier with empty disk files
 *    attached, gets the job's inputs written into those files and is told to go (warm-vm.ts).
 *    Each warm VM runs one job and is thrown away like a cold one; the pool boots another.
 *    Jobs whose limits the pooled VMs do not have (memory other than poolLimits.memoryMiB,
 *    diskMiB above poolLimits.diskMiB) boot cold, as do jobs arriving when the pool is empty.
 * Before either, the step must fit the temp dir's free space (disk-admission.ts): a warm VM
 * is charged its disks' full size, which may not fit where a cold VM of the job's own size
 * does; a step that fits neither way throws VmHostBusyError, having started nothing.
 * The scripts' stdout/stderr come on the guest's ttyS1 = QEMU's stdout → job.onLog.
 * The guest side is src/vm/guest/init; the kernel and initramfs come from
 * scripts/build-vm-assets.mjs (ensureVmAssets).
 */
import { createReadStream } from 'node:fs';
import { open, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { ensureVmAssets, type VmAssets } from '../../scripts/build-vm-assets.mjs';
import type { Logger } from '../log.ts';
import { DiskAdmission } from './disk-admission.ts';
import { VmError, VmHostBusyError, VmInputError, VmStartError } from './errors.ts';
import { canRaisePriority, cpuHasVirtualization } from './host.ts';
import { qemuArgs, type Drive, type VmAccel } from './qemu-command.ts';
import { QemuProcess } from './qemu-process.ts';
import {
  diskCapacityBytes,
  FILES,
  makeOutputFiles,
  MiB,
  makeScratch,
  makeStepDir,
  padToSector,
  sparseFile,
  stepDirOwnerAlive,
  TEMP_PREFIX,
  WARM_INPUT_BYTES,
  writeInputs,
  type WrittenInputs,
} from './step-files.ts';
import { consoleText, stepOutcome } from './step-outcome.ts';
import { VmCancelledError, type VmJob, type VmOutcome, type VmResult, type VmRunner } from './vm-runner.ts';
import { VmPool, type WarmVmInfo } from './vm-pool.ts';
import { WarmVm, WarmVmLost } from './warm-vm.ts';

export type { VmAccel };

export interface QemuVmRunnerOptions {
  /** Kernel + initramfs; default: ensureVmAssets() on first use. */
  assets?: VmAssets | (() => Promise<VmAssets>);
  /** Default: $BALER_VM_ACCEL, else 'auto' (KVM only when the CPU shows vmx/svm, /dev/kvm opens and a probe VM boots). */
  accel?: VmAccel | 'auto';
  /** Where per-step temp dirs go. Default: $BALER_VM_TMPDIR, else the OS temp dir. */
  tmpDir?: string;
  /**
   * Free space kept on tmpDir's filesystem: a step whose disks could eat into it (beside what
   * running steps may still write) is not started (VmHostBusyError). Default 0; the worker
   * passes BALER_VM_DISK_RESERVE_MIB (config.vmDiskReserveMiB).
   */
  diskReserveMiB?: number;
  /** Default: qemu-system-x86_64 (from PATH). */
  qemuBinary?: string;
  /** Guest vCPUs. Default 1 (fastest boot; TCG gains little from more on small hosts). */
  cpus?: number;
  /** Processes the scripts may have at once; over it the step fails (fork bombs). Default: 1024. */
  pidsMax?: number;
  /**
   * Warm VMs kept booted and waiting for jobs, each used for one job (0: none, every step boots
   * its own VM). Default 0; the worker passes BALER_VM_POOL (config.vmPoolSize). The pool starts
   * booting at construction; close() kills it.
   */
  poolSize?: number;
  /**
   * The limits warm VMs boot with. A job runs in one when its memoryMiB equals this memoryMiB
   * and its diskMiB is at most this diskMiB (its scratch filesystem is then made at its own
   * size); other jobs boot cold. Default: POOL_DEFAULT_LIMITS (the build spec's defaults).
   */
  poolLimits?: { memoryMiB: number; diskMiB: number };
  /** Records the accelerator chosen (info), each step's timings and outcome (debug) and the pool's trouble (warn). */
  logger?: Logger;
  /** Told of every VM start and every VM that did not come up (metrics). */
  boots?: VmBootObserver;
}

export type VmKind = 'cold' | 'warm';

export interface VmBootObserver {
  /** QEMU is being started: for one step (cold) or for the pool (warm). */
  started(kind: VmKind): void;
  /** It did not come up: QEMU refused or failed (bad kernel, no KVM), or a warm guest died or was not ready in time. */
  failed(kind: VmKind): void;
}

/** Warm VMs' limits unless poolLimits says otherwise: VM_DEFAULTS of src/builds/spec.ts (memorySize, diskSize). */
export const POOL_DEFAULT_LIMITS = { memoryMiB: 512, diskMiB: 1024 } as const;

/** Seconds a KVM probe boot may take before auto falls back to TCG. */
const KVM_PROBE_SECONDS = 20;
/** A warm VM not ready this long after its start is killed and replaced. */
const WARM_BOOT_TIMEOUT_MS = 60_000;
/** A warm VM that does not confirm `go` this fast is killed; its job boots cold. */
const WARM_ACK_TIMEOUT_MS = 15_000;
/** Warm VMs' RTC (the job's clock is set when the job arrives): 2000-01-01, nothing of the host's time. */
const WARM_RTC_SECONDS = 946_684_800;
/**
 * Warm VMs boot at this nice value when the worker may raise them back for their job: a boot
 * for a future job then takes CPU from running jobs only when it is idle (TCG boots use a core).
 * 10, not 19: on a saturated host a boot still gets a tenth of a core, enough for the boot timeout.
 */
const WARM_BOOT_NICE = 10;

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

/** What the written inputs take (the job, lower and upper disks: read-only to the guest, they grow no more). */
function inputBytesOf(inputs: WrittenInputs): number {
  return inputs.bytes.job + inputs.bytes.lower + inputs.bytes.upper;
}

/** Resolves with `p`, or rejects with VmCancelledError as soon as `signal` aborts. */
function abortable<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) return Promise.reject(new VmCancelledError());
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new VmCancelledError());
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

export class QemuVmRunner implements VmRunner {
  readonly #options: QemuVmRunnerOptions;
  #assets: Promise<VmAssets> | undefined;
  #accelLogged = false;
  readonly #pool: VmPool | undefined;
  readonly #poolLimits: { memoryMiB: number; diskMiB: number };
  readonly #admission: DiskAdmission;

  constructor(options: QemuVmRunnerOptions = {}) {
    this.#options = options;
    this.#admission = new DiskAdmission(this.tmpDir, (options.diskReserveMiB ?? 0) * MiB);
    this.#poolLimits = { ...(options.poolLimits ?? POOL_DEFAULT_LIMITS) };
    const size = options.poolSize ?? 0;
    if (!Number.isSafeInteger(size) || size < 0) throw new VmStartError(`poolSize must be a non-negative integer, got ${size}`);
    if (size > 0) {
      const { memoryMiB, diskMiB } = this.#poolLimits;
      if (!Number.isSafeInteger(memoryMiB) || memoryMiB < 128 || !Number.isSafeInteger(diskMiB) || diskMiB < 8) {
        throw new VmStartError(`poolLimits must be at least 128 MiB of memory and 8 MiB of disk, got ${memoryMiB}/${diskMiB}`);
      }
      this.#pool = new VmPool({ size, boot: () => this.#bootWarm(), logger: options.logger });
      this.#pool.start();
    }
  }

  get tmpDir(): string {
    return this.#options.tmpDir ?? (process.env.BALER_VM_TMPDIR || tmpdir());
  }

  /** The warm VMs waiting in the pool (none without a pool). */
  warmVms(): WarmVmInfo[] {
    return this.#pool?.vms() ?? [];
  }

  /**
   * Kills the pool's waiting VMs and removes their files; later steps boot cold. Steps running
   * now are not touched (cancel them through their signal).
   */
  async close(): Promise<void> {
    await this.#pool?.close();
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
      const result = await this.#runCold(
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
    const pool = this.#pool;
    if (pool && !pool.closed && job.limits.memoryMiB === this.#poolLimits.memoryMiB && job.limits.diskMiB <= this.#poolLimits.diskMiB) {
      // Not when its larger disks do not fit: a cold VM of the job's own size may.
      const warm = (await this.#admission.hasRoom(this.#holdBytes(this.#poolLimits.diskMiB, job))) ? pool.take() : undefined;
      if (warm) {
        const result = await this.#runWarm(warm, job, accel);
        if (result) return result;
      }
    }
    return this.#runCold(job, accel);
  }

  /** What a step's dir may come to: disks of `diskMiB` (the VM's, not the job's) and the inputs. */
  #holdBytes(diskMiB: number, job: VmJob, inputBytes = job.inputBytes ?? 0): number {
    return diskCapacityBytes(diskMiB) + inputBytes;
  }

  /**
   * Holds room for the step in `dir` (a VM with disks of `diskMiB`). Throws VmHostBusyError
   * when there is none now, VmInputError when there never is.
   */
  async #admit(dir: string, diskMiB: number, job: VmJob): Promise<void> {
    const inputs = job.inputBytes ? ` and ${Math.ceil(job.inputBytes / MiB)} MiB of inputs` : '';
    const what = `a ${diskMiB} MiB scratch disk and its output${inputs}${diskMiB === job.limits.diskMiB ? '' : `: a warm VM's disks, for diskSize ${job.limits.diskMiB} MiB`}`;
    const admission = await this.#admission.admit(dir, this.#holdBytes(diskMiB, job), what);
    if (admission.ok) return;
    if (admission.never) throw new VmInputError(`${admission.reason}; ask for a smaller diskSize`);
    throw new VmHostBusyError(admission.reason);
  }

  get #pidsMax(): number {
    return this.#options.pidsMax ?? 1024;
  }

  get #qemuBinary(): string {
    return this.#options.qemuBinary ?? 'qemu-system-x86_64';
  }

  async #runCold(job: VmJob, accel: VmAccel): Promise<VmResult> {
    const assets = await this.assets();
    if (job.signal?.aborted) throw new VmCancelledError();
    const dir = await makeStepDir(this.tmpDir);
    try {
      const path = (name: string): string => join(dir, name);
      await this.#admit(dir, job.limits.diskMiB, job);
      const inputs = await writeInputs(dir, job, { pidsMax: this.#pidsMax, trace: process.env.BALER_VM_TRACE === '1' });
      await this.#admission.hold(dir, this.#holdBytes(job.limits.diskMiB, job, inputBytesOf(inputs)));
      const drives: Drive[] = [];
      if (inputs.lowerCount > 0) drives.push({ id: 'lower', file: path(FILES.lower), readonly: true });
      if (inputs.hasUpper) {
        await padToSector(path(FILES.upper));
        drives.push({ id: 'upper', file: path(FILES.upper), readonly: true });
      }
      await padToSector(path(FILES.job));
      drives.push({ id: 'job', file: path(FILES.job), readonly: true });
      await makeScratch(path(FILES.scratch), job.limits.diskMiB, { signal: job.signal });
      await makeOutputFiles(dir, job.limits.diskMiB);
      drives.push(
        { id: 'scratch', file: path(FILES.scratch), readonly: false },
        { id: 'out', file: path(FILES.out), readonly: false },
        { id: 'status', file: path(FILES.status), readonly: false },
      );
      const args = qemuArgs({
        accel,
        cpus: this.#options.cpus ?? 1,
        memoryMiB: job.limits.memoryMiB,
        assets,
        rtcSeconds: job.clock,
        drives,
        pooled: false,
        trace: false,
      });
      this.#options.boots?.started('cold');
      const proc = new QemuProcess(this.#qemuBinary, args, { stdin: false });
      const { outcome, tarBytes } = await this.#supervise(proc, dir, job, accel, undefined).catch((err: unknown) => {
        if (err instanceof VmStartError) this.#options.boots?.failed('cold');
        throw err;
      });
      return this.#result(dir, outcome, tarBytes);
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** A warm VM with every disk file attached, booting in the background. */
  async #bootWarm(): Promise<WarmVm> {
    const [assets, accel] = await Promise.all([this.assets(), this.accel()]);
    const { memoryMiB, diskMiB } = this.#poolLimits;
    const boots = this.#options.boots;
    boots?.started('warm');
    const dir = await makeStepDir(this.tmpDir).catch((err: unknown) => {
      boots?.failed('warm');
      throw err;
    });
    try {
      const path = (name: string): string => join(dir, name);
      for (const name of [FILES.job, FILES.lower, FILES.upper]) await sparseFile(path(name), WARM_INPUT_BYTES);
      await makeScratch(path(FILES.scratch), diskMiB);
      await makeOutputFiles(dir, diskMiB);
      const args = qemuArgs({
        accel,
        cpus: this.#options.cpus ?? 1,
        memoryMiB,
        assets,
        rtcSeconds: WARM_RTC_SECONDS,
        drives: [
          { id: 'job', file: path(FILES.job), readonly: true },
          { id: 'lower', file: path(FILES.lower), readonly: true },
          { id: 'upper', file: path(FILES.upper), readonly: true },
          { id: 'scratch', file: path(FILES.scratch), readonly: false },
          { id: 'out', file: path(FILES.out), readonly: false },
          { id: 'status', file: path(FILES.status), readonly: false },
        ],
        pooled: true,
        trace: process.env.BALER_VM_TRACE === '1',
      });
      const nice = canRaisePriority() ? WARM_BOOT_NICE : 0;
      const onBootEnd = (ok: boolean): void => {
        if (!ok) boots?.failed('warm');
      };
      return new WarmVm(dir, this.#qemuBinary, args, { memoryMiB, diskMiB, bootTimeoutMs: WARM_BOOT_TIMEOUT_MS, nice, onBootEnd });
    } catch (err) {
      boots?.failed('warm');
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /**
   * The job in a warm VM taken from the pool (booting or ready): its inputs go into the VM's
   * disk files, then, once it is ready, `go`. Undefined when the VM was lost before it took the
   * job (it died, misbehaved, or the inputs exceed its disks): the caller boots cold.
   */
  async #runWarm(warm: WarmVm, job: VmJob, accel: VmAccel): Promise<VmResult | undefined> {
    try {
      try {
        await this.#admit(warm.dir, warm.diskMiB, job);
      } catch (err) {
        if (!(err instanceof VmHostBusyError || err instanceof VmInputError)) throw err;
        // The room went to another step since hasRoom(): a cold VM of the job's size may fit.
        (job.logger ?? this.#options.logger)?.debug({ reason: err.message }, 'VM step: no room for a warm VM\'s disks; booting cold');
        await warm.discard();
        return undefined;
      }
      const inputs = await writeInputs(warm.dir, job, { pidsMax: this.#pidsMax, trace: process.env.BALER_VM_TRACE === '1' });
      await this.#admission.hold(warm.dir, this.#holdBytes(warm.diskMiB, job, inputBytesOf(inputs)));
      if (!(await this.#fitWarmDisks(warm, inputs))) {
        (job.logger ?? this.#options.logger)?.debug({ bytes: inputs.bytes }, 'VM step: inputs larger than a warm VM takes; booting cold');
        await warm.discard();
        return undefined;
      }
      if (job.limits.diskMiB !== warm.diskMiB) {
        await makeScratch(join(warm.dir, FILES.scratch), job.limits.diskMiB, { deviceMiB: warm.diskMiB, signal: job.signal });
      }
      await abortable(warm.ready, job.signal);
      const { outcome, tarBytes } = await this.#supervise(warm.proc, warm.dir, job, accel, (sink) => warm.go(sink, WARM_ACK_TIMEOUT_MS));
      return this.#result(warm.dir, outcome, tarBytes);
    } catch (err) {
      await warm.discard();
      if (err instanceof WarmVmLost) {
        (job.logger ?? this.#options.logger)?.warn({ err: err.message }, 'VM step: the warm VM was lost before it took the job; booting cold');
        return undefined;
      }
      throw err;
    }
  }

  /** Whether the written inputs fit the warm VM's disks; grows the input files back to their disks' size. */
  async #fitWarmDisks(warm: WarmVm, inputs: WrittenInputs): Promise<boolean> {
    const { job, lower, upper } = inputs.bytes;
    if (job > WARM_INPUT_BYTES || lower > WARM_INPUT_BYTES || upper > WARM_INPUT_BYTES) return false;
    // O_TRUNC shortened them: keep each file as long as the disk QEMU attached.
    await sparseFile(join(warm.dir, FILES.job), WARM_INPUT_BYTES);
    if (inputs.lowerCount > 0) await sparseFile(join(warm.dir, FILES.lower), WARM_INPUT_BYTES);
    if (inputs.hasUpper) await sparseFile(join(warm.dir, FILES.upper), WARM_INPUT_BYTES);
    return true;
  }

  /**
   * Runs a started QEMU to its end: output to job.onLog, killed at the timeout or on abort.
   * `handOver` (warm VMs) starts the job and resolves once the guest took it; the timeout
   * counts from then on for a warm VM, from QEMU's start for a cold one.
   */
  async #supervise(
    proc: QemuProcess,
    dir: string,
    job: VmJob,
    accel: VmAccel,
    handOver: ((sink: (chunk: Buffer) => void) => Promise<void>) | undefined,
  ): Promise<{ outcome: VmOutcome; tarBytes: number }> {
    const { timeoutSeconds } = job.limits;
    const signal = job.signal;
    const decoder = new StringDecoder('utf8');
    const sink = (chunk: Buffer): void => {
      const text = decoder.write(chunk);
      if (text && job.onLog) job.onLog(text);
    };
    const startedAt = Date.now();
    let timedOut = false;
    let cancelled = false;
    const timer = setTimeout(() => {
      timedOut = true;
      proc.kill();
    }, timeoutSeconds * 1000);
    const onAbort = (): void => {
      cancelled = true;
      proc.kill();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    if (signal?.aborted) onAbort();
    let code: number | null;
    try {
      if (handOver) {
        try {
          await handOver(sink);
        } catch (err) {
          // Killed for the timeout or the abort while handing over: that is what it ended in.
          if (!timedOut && !cancelled) throw err;
        }
      } else {
        proc.onStdout(sink);
      }
      code = await proc.closed;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
    const rest = decoder.end();
    if (rest && job.onLog) job.onLog(rest);

    // With BALER_VM_TRACE=1 the console's phase timestamps come along.
    const trace = process.env.BALER_VM_TRACE === '1' ? { console: consoleText(proc.console) } : {};
    (job.logger ?? this.#options.logger)?.debug(
      { accel, pooled: handOver !== undefined, vmMs: Date.now() - startedAt, exitCode: code, timedOut, cancelled, consoleBytes: proc.console.totalBytes, ...trace },
      'VM step ended',
    );
    if (cancelled) throw new VmCancelledError();
    if (proc.spawnError) throw new VmStartError(`cannot start ${proc.binary}: ${proc.spawnError.message}`, { cause: proc.spawnError });
    if (timedOut) return { outcome: { ok: false, reason: `timed out after ${timeoutSeconds} s` }, tarBytes: 0 };
    return stepOutcome(dir, { binary: proc.binary, code, stderr: proc.stderr, console: proc.console });
  }

  /** The step's result over its dir (QEMU has exited): the upper tar, and dispose() removing the dir. */
  #result(dir: string, outcome: VmOutcome, tarBytes: number): VmResult {
    let disposed = false;
    const outPath = join(dir, FILES.out);
    return {
      outcome,
      openUpperTar: async (): Promise<Readable> => {
        if (!outcome.ok) throw new VmError(`the VM step failed (${outcome.reason}): there is no upper tar`);
        if (disposed) throw new VmError('the VM step was disposed: its upper tar is gone');
        return createReadStream(outPath, { start: 0, end: tarBytes - 1 });
      },
      dispose: async (): Promise<void> => {
        if (disposed) return;
        disposed = true;
        await rm(dir, { recursive: true, force: true });
      },
    };
  }

  /**
   * Removes temp dirs of steps and warm VMs whose process is gone (a worker that was killed
   * cannot dispose). Safe with several workers sharing the temp dir: a dir whose owner pid
   * lives is kept.
   */
  static async sweepStaleTempDirs(tmpDir: string = process.env.BALER_VM_TMPDIR || tmpdir()): Promise<string[]> {
    const removed: string[] = [];
    for (const name of await readdir(tmpDir).catch(() => [] as string[])) {
      if (!name.startsWith(TEMP_PREFIX)) continue;
      const path = join(tmpDir, name);
      let alive = await stepDirOwnerAlive(path);
      if (alive === undefined) {
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
