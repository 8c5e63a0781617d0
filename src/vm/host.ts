/**
 * Host-side helpers of the QEMU runner: child processes that die with us, at a priority we
 * may change, and running tools with a stream on stdin. (What depends on the guest's
 * architecture, e.g. the TSC frequency, is in platforms/.)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { VmCancelledError } from './vm-runner.ts';

/**
 * Whether this process may raise a child's CPU priority back after lowering it (CAP_SYS_NICE
 * in its effective set: root outside containers, usually not root in a default container).
 */
export function canRaisePriority(): boolean {
  try {
    const hex = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    return hex !== undefined && (BigInt(`0x${hex}`) & (1n << 23n)) !== 0n;
  } catch {
    return false;
  }
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

/**
 * Spawns a child that is SIGKILLed when this process exits (an 'exit' hook) or dies (via
 * `setpriv --pdeathsig KILL` when util-linux's setpriv is there: it execs the command, so the
 * child's pid is the command's), optionally at a lower CPU priority (`nice`).
 */
export function spawnOwned(cmd: string, args: readonly string[], stdio: ('pipe' | 'ignore')[], opts: { nice?: number } = {}): ChildProcess {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const child of live) child.kill('SIGKILL');
    });
  }
  // `nice -n N cmd` execs cmd: every thread it starts has the lower priority, the pid stays.
  const command = opts.nice ? ['nice', '-n', String(opts.nice), cmd, ...args] : [cmd, ...args];
  const setpriv = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));
  const child = setpriv ? spawn(setpriv, ['--pdeathsig', 'KILL', '--', ...command], { stdio }) : spawn(command[0] as string, command.slice(1), { stdio });
  live.add(child);
  child.once('exit', () => live.delete(child));
  child.once('error', () => live.delete(child));
  return child;
}

export class ToolError extends Error {
  constructor(
    message: string,
    readonly stderr: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ToolError';
  }
}

/**
 * Runs a tool to completion; `input` is piped to its stdin (its byte count is returned).
 * Rejects with ToolError on a non-zero exit or an input stream error, with VmCancelledError
 * when `signal` aborts (the tool is killed).
 */
export function runTool(cmd: string, args: readonly string[], opts: { input?: Readable; signal?: AbortSignal } = {}): Promise<{ inputBytes: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    if (opts.signal?.aborted) {
      reject(new VmCancelledError());
      return;
    }
    const child = spawnOwned(cmd, args, [opts.input ? 'pipe' : 'ignore', 'pipe', 'pipe']);
    let stderr = '';
    let stdout = '';
    let inputBytes = 0;
    let failure: Error | undefined;
    const onAbort = (): void => {
      failure ??= new VmCancelledError();
      child.kill('SIGKILL');
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    child.stderr?.setEncoding('utf8').on('data', (s: string) => {
      if (stderr.length < 65536) stderr += s;
    });
    child.stdout?.setEncoding('utf8').on('data', (s: string) => {
      if (stdout.length < 65536) stdout += s;
    });
    if (opts.input && child.stdin) {
      const input = opts.input;
      const stdin = child.stdin;
      stdin.on('error', () => {
        /* EPIPE when the tool stops reading: its exit code tells */
      });
      input.on('data', (chunk: Buffer) => {
        inputBytes += chunk.length;
      });
      input.on('error', (err) => {
        failure ??= new ToolError(`reading the input for ${cmd} failed: ${err.message}`, '', { cause: err });
        child.kill('SIGKILL');
      });
      input.pipe(stdin);
    }
    child.on('error', (err) => {
      failure ??= new ToolError(`cannot run ${cmd}: ${err.message}`, '', { cause: err });
    });
    child.on('close', (code, signal) => {
      opts.signal?.removeEventListener('abort', onAbort);
      if (opts.input) opts.input.destroy();
      if (failure) reject(failure);
      else if (code !== 0) reject(new ToolError(`${cmd} failed (${signal ?? `exit code ${code}`}): ${stderr.trim().slice(-2000)}`, stderr));
      else resolve({ inputBytes, stdout });
    });
  });
}
