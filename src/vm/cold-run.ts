/**
 * A step in a VM of its own: its inputs are written to a private step dir (step-files.ts), then
 * a VM boots with them attached, runs the step and exits.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { VmStartError } from './errors.ts';
import type { VmAccel } from './platform.ts';
import { qemuArgs, type Drive } from './qemu-command.ts';
import { QemuProcess } from './qemu-process.ts';
import { traceEnabled, type RunnerContext } from './runner-context.ts';
import { admitStep, holdWritten } from './step-admission.ts';
import { FILES, makeOutputFiles, makeScratch, makeStepDir, padToSector, writeInputs } from './step-files.ts';
import { stepResult } from './step-result.ts';
import { superviseStep } from './supervise.ts';
import { VmCancelledError, type VmJob, type VmResult } from './vm-runner.ts';

export async function runCold(ctx: RunnerContext, job: VmJob, accel: VmAccel): Promise<VmResult> {
  const assets = await ctx.assets();
  if (job.signal?.aborted) throw new VmCancelledError();
  const dir = await makeStepDir(ctx.tmpDir);
  try {
    const path = (name: string): string => join(dir, name);
    await admitStep(ctx.admission, dir, job.limits.diskMiB, job);
    const inputs = await writeInputs(dir, job, { pidsMax: ctx.pidsMax, trace: traceEnabled() });
    await holdWritten(ctx.admission, dir, job.limits.diskMiB, job, inputs);
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
    drives.push({ id: 'scratch', file: path(FILES.scratch), readonly: false }, { id: 'out', file: path(FILES.out), readonly: false }, { id: 'status', file: path(FILES.status), readonly: false });
    const args = qemuArgs({
      platform: ctx.platform,
      accel,
      cpus: ctx.cpus,
      memoryMiB: job.limits.memoryMiB,
      assets,
      rtcSeconds: job.clock,
      drives,
      pooled: false,
      trace: false,
    });
    ctx.boots?.started('cold', ctx.platform.name);
    const proc = new QemuProcess(ctx.qemuBinary, args, { stdin: false });
    const logger = job.logger ?? ctx.logger;
    const { outcome, tarBytes } = await superviseStep(proc, dir, job, { accel, logger, handOver: undefined }).catch((err: unknown) => {
      if (err instanceof VmStartError) ctx.boots?.failed('cold', ctx.platform.name);
      throw err;
    });
    return stepResult(dir, outcome, tarBytes);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
