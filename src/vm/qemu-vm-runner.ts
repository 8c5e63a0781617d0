/**
 * VmRunner on QEMU microVMs: every user script runs in a throwaway VM with no NIC.
 *
 * A step runs in one of two ways, with the same guest, the same disks and the same result:
 *  - cold (cold-run.ts): a VM boots for the step with its inputs attached;
 *  - warm (warm-run.ts, poolSize > 0): a VM from the pool (vm-pool.ts), booted earlier with
 *    empty disk files attached, gets the job's inputs and is told to go. Each warm VM runs one
 *    job and is thrown away like a cold one; the pool boots another.
 * Which one is this file's policy: jobs whose limits the pooled VMs do not have (memory other
 * than poolLimits.memoryMiB, diskMiB above poolLimits.diskMiB) boot cold, as do jobs arriving
 * when the pool is empty. Before either, the step must fit the temp dir's free space
 * (step-admission.ts): a warm VM is charged its disks' full size, which may not fit where a
 * cold VM of the job's own size does; a step that fits neither way throws VmHostBusyError,
 * having started nothing. What depends on the guest's architecture is its VmPlatform
 * (platforms/); the kernel and initramfs come from assets/ (ensureVmAssets).
 */
import { tmpdir } from 'node:os';
import type { Logger } from '../log.ts';
import { chooseAccel, envAccel, type AccelSetting } from './accelerator.ts';
import { ensureVmAssets, type VmAssets } from './assets/vm-assets.ts';
import { runCold } from './cold-run.ts';
import { DiskAdmission } from './disk-admission.ts';
import { VmInputError, VmStartError } from './errors.ts';
import type { VmAccel, VmPlatform } from './platform.ts';
import { DEFAULT_VM_PLATFORM } from './platforms/index.ts';
import type { RunnerContext, VmBootObserver } from './runner-context.ts';
import { holdBytes } from './step-admission.ts';
import { MiB } from './step-files.ts';
import { sweepStaleStepDirs } from './stale-step-dirs.ts';
import { VmCancelledError, type VmJob, type VmResult, type VmRunner } from './vm-runner.ts';
import { VmPool, type WarmVmInfo } from './vm-pool.ts';
import { bootWarm, runWarm } from './warm-run.ts';

export interface QemuVmRunnerOptions {
  /** Kernel + initramfs; default: ensureVmAssets() on first use. */
  assets?: VmAssets | (() => Promise<VmAssets>);
  /** The guests' architecture. Default: linux/amd64. */
  platform?: VmPlatform;
  /** Default: $BALER_VM_ACCEL, else 'auto' (accelerator.ts: KVM only when the host runs the guest's architecture with virtualisation, /dev/kvm opens and a probe VM boots). */
  accel?: AccelSetting;
  /** Where per-step temp dirs go. Default: $BALER_VM_TMPDIR, else the OS temp dir. */
  tmpDir?: string;
  /**
   * Free space kept on tmpDir's filesystem: a step whose disks could eat into it (beside what
   * running steps may still write) is not started (VmHostBusyError). Default 0; the worker
   * passes BALER_VM_DISK_RESERVE_MIB (config.vmDiskReserveMiB).
   */
  diskReserveMiB?: number;
  /**
   * The temp dir's admission when several runners share it (a worker's runner per platform):
   * steps of one worker then never refuse each other. Default: the runner's own, over tmpDir
   * and diskReserveMiB.
   */
  admission?: DiskAdmission;
  /** Default: the platform's (qemu-system-x86_64 for amd64), from PATH. */
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
   * Boot the pool at the first step rather than at construction: an emulated platform's warm
   * VMs cost a TCG boot each, which a worker that never gets a build for it should not pay.
   */
  warmOnFirstRun?: boolean;
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
  /**
   * Tests only: runs when a warm VM's disk files are made, before its QEMU starts (to have
   * QEMU open a file that a job is rewriting at that moment).
   */
  beforeWarmStart?: (dir: string) => Promise<void>;
}

/** Warm VMs' limits unless poolLimits says otherwise: VM_DEFAULTS of src/builds/spec.ts (memorySize, diskSize). */
export const POOL_DEFAULT_LIMITS = { memoryMiB: 512, diskMiB: 1024 } as const;

/** Seconds a KVM probe boot may take before auto falls back to TCG. */
const KVM_PROBE_SECONDS = 20;

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
  readonly #ctx: RunnerContext;
  #assets: Promise<VmAssets> | undefined;
  #accelLogged = false;
  readonly #pool: VmPool | undefined;
  readonly #poolLimits: { memoryMiB: number; diskMiB: number };

  constructor(options: QemuVmRunnerOptions = {}) {
    this.#options = options;
    const platform = options.platform ?? DEFAULT_VM_PLATFORM;
    const tmpDir = options.tmpDir ?? (process.env.BALER_VM_TMPDIR || tmpdir());
    this.#ctx = {
      platform,
      qemuBinary: options.qemuBinary ?? platform.qemu.binary,
      cpus: options.cpus ?? 1,
      pidsMax: options.pidsMax ?? 1024,
      tmpDir,
      admission: options.admission ?? new DiskAdmission(tmpDir, (options.diskReserveMiB ?? 0) * MiB),
      logger: options.logger,
      boots: options.boots,
      assets: () => this.assets(),
    };
    this.#poolLimits = { ...(options.poolLimits ?? POOL_DEFAULT_LIMITS) };
    const size = options.poolSize ?? 0;
    if (!Number.isSafeInteger(size) || size < 0) throw new VmStartError(`poolSize must be a non-negative integer, got ${size}`);
    if (size > 0) {
      const { memoryMiB, diskMiB } = this.#poolLimits;
      if (!Number.isSafeInteger(memoryMiB) || memoryMiB < 128 || !Number.isSafeInteger(diskMiB) || diskMiB < 8) {
        throw new VmStartError(`poolLimits must be at least 128 MiB of memory and 8 MiB of disk, got ${memoryMiB}/${diskMiB}`);
      }
      const boot = async () => {
        const [, accel] = await Promise.all([this.assets(), this.accel()]);
        return bootWarm(this.#ctx, this.#poolLimits, accel, options.beforeWarmStart);
      };
      this.#pool = new VmPool({ size, boot, logger: options.logger });
      if (!options.warmOnFirstRun) this.#pool.start();
    }
  }

  get tmpDir(): string {
    return this.#ctx.tmpDir;
  }

  /** The guests' architecture. */
  get platform(): VmPlatform {
    return this.#ctx.platform;
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
      const platform = this.#ctx.platform;
      this.#assets = (typeof a === 'function' ? a() : a ? Promise.resolve(a) : ensureVmAssets({ platform })).catch((err: unknown) => {
        this.#assets = undefined;
        throw new VmStartError(`building the VM kernel/initramfs failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      });
    }
    return this.#assets;
  }

  /** The accelerator steps run with: the option, else BALER_VM_ACCEL, else auto-detected (once per process). */
  async accel(): Promise<VmAccel> {
    const setting = this.#options.accel ?? envAccel();
    const accel = await chooseAccel(this.#ctx.platform, setting, () => this.#probeKvm());
    if (!this.#accelLogged) {
      const how = setting === 'auto' ? 'auto' : 'configured';
      this.#options.logger?.info({ accel, how, platform: this.#ctx.platform.name }, `VM accelerator: ${accel}`);
    }
    this.#accelLogged = true;
    return accel;
  }

  /** Whether a VM boots and runs a step under KVM. */
  async #probeKvm(): Promise<boolean> {
    const limits = { diskMiB: 16, memoryMiB: 128, timeoutSeconds: KVM_PROBE_SECONDS };
    const result = await runCold(this.#ctx, { lowerCount: 0, shadowSetup: false, clock: 0, limits }, 'kvm');
    const ok = result.outcome.ok;
    await result.dispose();
    return ok;
  }

  async run(job: VmJob): Promise<VmResult> {
    validate(job);
    if (job.platform !== undefined && job.platform !== this.#ctx.platform.name) {
      throw new VmStartError(`this runner runs ${this.#ctx.platform.name} VMs, not ${job.platform}`);
    }
    if (job.signal?.aborted) throw new VmCancelledError();
    const accel = await this.accel();
    const pool = this.#pool;
    // Started here when warmOnFirstRun (a no-op once it runs): this step boots cold, later ones find warm VMs.
    pool?.start();
    if (pool && !pool.closed && job.limits.memoryMiB === this.#poolLimits.memoryMiB && job.limits.diskMiB <= this.#poolLimits.diskMiB) {
      // Not when its larger disks do not fit: a cold VM of the job's own size may.
      const warm = (await this.#ctx.admission.hasRoom(holdBytes(this.#poolLimits.diskMiB, job))) ? pool.take() : undefined;
      if (warm) {
        const result = await runWarm(this.#ctx, warm, job, accel);
        if (result) return result;
      }
    }
    return runCold(this.#ctx, job, accel);
  }

  /**
   * Removes temp dirs of steps and warm VMs whose process is gone (a worker that was killed
   * cannot dispose). Safe with several workers sharing the temp dir: a dir whose owner pid
   * lives is kept.
   */
  static sweepStaleTempDirs(tmpDir: string = process.env.BALER_VM_TMPDIR || tmpdir()): Promise<string[]> {
    return sweepStaleStepDirs(tmpDir);
  }
}
