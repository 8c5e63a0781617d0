/**
 * Runs a started QEMU to its end: the scripts' output (the guest's second serial port = QEMU's
 * stdout) to job.onLog, the VM killed at the job's timeout or on abort, and its outcome read
 * from its status disk (step-outcome.ts).
 */
import { loadavg } from 'node:os';
import { StringDecoder } from 'node:string_decoder';
import type { Logger } from '../log.ts';
import { VmStartError } from './errors.ts';
import type { VmAccel } from './platform.ts';
import type { QemuProcess } from './qemu-process.ts';
import { traceEnabled } from './runner-context.ts';
import { consoleText, stepOutcome } from './step-outcome.ts';
import { VmCancelledError, type VmJob, type VmOutcome } from './vm-runner.ts';

/** Starts the job in a warm VM, its output going to `sink`; resolves once the guest took it. */
export type HandOver = (sink: (chunk: Buffer) => void) => Promise<void>;

/**
 * A step this long without output gets a line saying where its guest is: the console's tail,
 * QEMU's threads (state, nice, CPU time) and the host's load. Once per quiet stretch of this length.
 */
const QUIET_LINE_MS = 60_000;

export interface SupervisedStep {
  outcome: VmOutcome;
  /** The upper tar's length in the step's out file (0 unless outcome.ok). */
  tarBytes: number;
}

/**
 * `handOver` (warm VMs) starts the job; the timeout counts from then on for a warm VM, from
 * QEMU's start for a cold one. Throws VmCancelledError when `job.signal` aborted it,
 * VmStartError when QEMU could not start.
 */
export async function superviseStep(proc: QemuProcess, dir: string, job: VmJob, how: { accel: VmAccel; logger: Logger | undefined; handOver: HandOver | undefined }): Promise<SupervisedStep> {
  const { timeoutSeconds } = job.limits;
  const { signal } = job;
  const { handOver } = how;
  // UTF-8 split across chunks stays whole; the build log assembles lines (BuildLogWriter).
  const decoder = new StringDecoder('utf8');
  let lastOutputAt = Date.now();
  const sink = (chunk: Buffer): void => {
    lastOutputAt = Date.now();
    const text = decoder.write(chunk);
    if (text && job.onLog) job.onLog(text);
  };
  const startedAt = Date.now();
  const quietWatch = setInterval(() => {
    const quietMs = Date.now() - lastOutputAt;
    if (quietMs < QUIET_LINE_MS) return;
    lastOutputAt = Date.now();
    how.logger?.info(
      { quietMs, stepMs: Date.now() - startedAt, consoleBytes: proc.console.totalBytes, console: consoleText(proc.console, 1500), qemuThreads: proc.threadStates(), loadavg: loadavg() },
      'VM step: no output for a while',
    );
  }, QUIET_LINE_MS / 4);
  quietWatch.unref();
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
    clearInterval(quietWatch);
    signal?.removeEventListener('abort', onAbort);
  }
  const rest = decoder.end();
  if (rest && job.onLog) job.onLog(rest);

  // With BALER_VM_TRACE=1 the console's phase timestamps come along.
  const trace = traceEnabled() ? { console: consoleText(proc.console) } : {};
  how.logger?.debug(
    { accel: how.accel, pooled: handOver !== undefined, vmMs: Date.now() - startedAt, exitCode: code, timedOut, cancelled, consoleBytes: proc.console.totalBytes, ...trace },
    'VM step ended',
  );
  if (cancelled) throw new VmCancelledError();
  if (proc.spawnError) throw new VmStartError(`cannot start ${proc.binary}: ${proc.spawnError.message}`, { cause: proc.spawnError });
  if (timedOut) return { outcome: { ok: false, reason: `timed out after ${timeoutSeconds} s` }, tarBytes: 0 };
  return stepOutcome(dir, { binary: proc.binary, code, stderr: proc.stderr, console: proc.console });
}
