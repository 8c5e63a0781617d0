/**
 * Steps in warm VMs: a VM for the pool (vm-pool.ts) boots with empty disk files attached; a job
 * taken by it gets its inputs written into those files and the VM is told to go (warm-vm.ts).
 * Each warm VM runs one job and is thrown away like a cold one.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { VmHostBusyError, VmInputError } from './errors.ts';
import { canRaisePriority } from './host.ts';
import type { VmAccel } from './platform.ts';
import { qemuArgs } from './qemu-command.ts';
import { traceEnabled, type RunnerContext } from './runner-context.ts';
import { admitStep, holdWritten } from './step-admission.ts';
import { FILES, makeOutputFiles, makeScratch, makeStepDir, sparseFile, WARM_INPUT_BYTES, writeInputs, type WrittenInputs } from './step-files.ts';
import { stepResult } from './step-result.ts';
import { superviseStep } from './supervise.ts';
import { VmCancelledError, type VmJob, type VmResult } from './vm-runner.ts';
import { WarmVm, WarmVmLost } from './warm-vm.ts';

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

/**
 * A warm VM with every disk file attached, booting in the background, with the pool's `limits`.
 * QEMU sizes each disk when it opens its file: the guest checks the input disks' sizes when its
 * job arrives (src/vm/guest/init), as a job can take this VM before QEMU has opened them.
 */
export async function bootWarm(ctx: RunnerContext, limits: { memoryMiB: number; diskMiB: number }, accel: VmAccel, beforeStart?: (dir: string) => Promise<void>): Promise<WarmVm> {
  const assets = await ctx.assets();
  const { memoryMiB, diskMiB } = limits;
  const { boots } = ctx;
  const platform = ctx.platform.name;
  boots?.started('warm', platform);
  const dir = await makeStepDir(ctx.tmpDir).catch((err: unknown) => {
    boots?.failed('warm', platform);
    throw err;
  });
  try {
    const path = (name: string): string => join(dir, name);
    for (const name of [FILES.job, FILES.lower, FILES.upper]) await sparseFile(path(name), WARM_INPUT_BYTES);
    await makeScratch(path(FILES.scratch), diskMiB);
    await makeOutputFiles(dir, diskMiB);
    await beforeStart?.(dir);
    const args = qemuArgs({
      platform: ctx.platform,
      accel,
      cpus: ctx.cpus,
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
      trace: traceEnabled(),
    });
    const nice = canRaisePriority() ? WARM_BOOT_NICE : 0;
    const onBootEnd = (ok: boolean): void => {
      if (!ok) boots?.failed('warm', platform);
    };
    return new WarmVm(dir, ctx.qemuBinary, args, { memoryMiB, diskMiB, bootTimeoutMs: WARM_BOOT_TIMEOUT_MS, nice, onBootEnd });
  } catch (err) {
    boots?.failed('warm', platform);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/**
 * The job in a warm VM taken from the pool (booting or ready): its inputs go into the VM's
 * disk files, then, once it is ready, `go`. Undefined when the VM was lost before it took the
 * job (it died, misbehaved, or the inputs exceed its disks): the caller boots cold.
 */
export async function runWarm(ctx: RunnerContext, warm: WarmVm, job: VmJob, accel: VmAccel): Promise<VmResult | undefined> {
  const logger = job.logger ?? ctx.logger;
  try {
    try {
      await admitStep(ctx.admission, warm.dir, warm.diskMiB, job);
    } catch (err) {
      if (!(err instanceof VmHostBusyError || err instanceof VmInputError)) throw err;
      // The room went to another step since hasRoom(): a cold VM of the job's size may fit.
      logger?.debug({ reason: err.message }, "VM step: no room for a warm VM's disks; booting cold");
      await warm.discard();
      return undefined;
    }
    const inputs = await writeInputs(warm.dir, job, { pidsMax: ctx.pidsMax, trace: traceEnabled() });
    await holdWritten(ctx.admission, warm.dir, warm.diskMiB, job, inputs);
    if (!(await fitWarmDisks(warm, inputs))) {
      logger?.debug({ bytes: inputs.bytes }, 'VM step: inputs larger than a warm VM takes; booting cold');
      await warm.discard();
      return undefined;
    }
    if (job.limits.diskMiB !== warm.diskMiB) {
      await makeScratch(join(warm.dir, FILES.scratch), job.limits.diskMiB, { deviceMiB: warm.diskMiB, signal: job.signal });
    }
    await abortable(warm.ready, job.signal);
    const handOver = (sink: (chunk: Buffer) => void): Promise<void> => warm.go(sink, WARM_ACK_TIMEOUT_MS);
    const { outcome, tarBytes } = await superviseStep(warm.proc, warm.dir, job, { accel, logger: job.logger ?? ctx.logger, handOver });
    return stepResult(warm.dir, outcome, tarBytes);
  } catch (err) {
    await warm.discard();
    if (err instanceof WarmVmLost) {
      logger?.warn({ err: err.message }, 'VM step: the warm VM was lost before it took the job; booting cold');
      return undefined;
    }
    throw err;
  }
}

/** Whether the written inputs fit the warm VM's disks; grows the input files back to their disks' size. */
async function fitWarmDisks(warm: WarmVm, inputs: WrittenInputs): Promise<boolean> {
  const { job, lower, upper } = inputs.bytes;
  if (job > WARM_INPUT_BYTES || lower > WARM_INPUT_BYTES || upper > WARM_INPUT_BYTES) return false;
  // O_TRUNC shortened them: keep each file as long as the disk QEMU attached.
  await sparseFile(join(warm.dir, FILES.job), WARM_INPUT_BYTES);
  if (inputs.lowerCount > 0) await sparseFile(join(warm.dir, FILES.lower), WARM_INPUT_BYTES);
  if (inputs.hasUpper) await sparseFile(join(warm.dir, FILES.upper), WARM_INPUT_BYTES);
  return true;
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
