/**
 * One running QEMU: its stdout (the guest's log port: ttyS1 on amd64) goes to one handler at a
 * time, buffered until there is one; its console (on fd CONSOLE_FD) is kept as a bounded tail;
 * stderr's start is kept for errors; stdin (the log port's input) is open only for warm VMs. The
 * process dies with ours (spawnOwned).
 */
import type { ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { ConsoleTail } from './console-tail.ts';
import { spawnOwned } from './host.ts';
import { CONSOLE_FD } from './qemu-command.ts';

/** How long after QEMU's exit its output may still come in. */
const CLOSE_GRACE_MS = 2000;
/** How much of the guest's console the host keeps (its last bytes). */
const CONSOLE_KEPT_BYTES = 16 * 1024;

export class QemuProcess {
  readonly binary: string;
  /** The end of the guest's console. */
  readonly console = new ConsoleTail(CONSOLE_KEPT_BYTES);
  readonly #child: ChildProcess;
  /** Resolves with the exit code (null when killed by a signal, or not started) once the process is gone. */
  readonly exited: Promise<number | null>;
  /**
   * Resolves like `exited`, once its output is read too: when stdout and stderr closed, or at
   * most CLOSE_GRACE_MS after the exit (a child of its own could hold them open).
   */
  readonly closed: Promise<number | null>;
  #stdoutHandler: ((chunk: Buffer) => void) | undefined;
  readonly #pending: Buffer[] = [];
  #stderr = '';
  #spawnError: Error | undefined;
  #exited = false;

  /** `nice`: started at this much lower CPU priority (see raisePriority()). */
  constructor(binary: string, args: readonly string[], opts: { stdin: boolean; nice?: number }) {
    this.binary = binary;
    const stdio: ('pipe' | 'ignore')[] = [opts.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'];
    while (stdio.length <= CONSOLE_FD) stdio.push('pipe');
    const child = spawnOwned(binary, args, stdio, { nice: opts.nice });
    this.#child = child;
    (child.stdio[CONSOLE_FD] as NodeJS.ReadableStream | null)?.on('data', (chunk: Buffer) => this.console.push(chunk));
    child.stdin?.on('error', () => {
      /* EPIPE once QEMU is gone: its exit tells */
    });
    child.stdout?.on('data', (chunk: Buffer) => {
      if (this.#stdoutHandler) this.#stdoutHandler(chunk);
      else this.#pending.push(chunk);
    });
    child.stderr?.setEncoding('utf8').on('data', (s: string) => {
      if (this.#stderr.length < 16384) this.#stderr += s;
    });
    this.exited = new Promise((resolve) => {
      child.once('exit', (code) => {
        this.#exited = true;
        resolve(code);
      });
      child.once('error', (err) => {
        this.#spawnError = err;
        this.#exited = true;
        // No 'exit' follows a failed spawn in every Node version: settle here too.
        resolve(null);
      });
    });
    this.closed = new Promise((resolve) => {
      child.once('close', (code) => resolve(code));
      void this.exited.then((code) => setTimeout(() => resolve(code), CLOSE_GRACE_MS).unref());
    });
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  get stderr(): string {
    return this.#stderr;
  }

  get spawnError(): Error | undefined {
    return this.#spawnError;
  }

  /** Sends the guest's stdout to `handler` from now on (what came before it first). */
  onStdout(handler: (chunk: Buffer) => void): void {
    this.#stdoutHandler = handler;
    for (const chunk of this.#pending.splice(0)) handler(chunk);
  }

  /** Writes to the guest's log port (warm VMs only). */
  send(text: string): void {
    this.#child.stdin?.write(text);
  }

  /**
   * Gives every thread of QEMU this process's CPU priority (it was started niced). Needs
   * CAP_SYS_NICE; false when it could not.
   */
  raisePriority(): boolean {
    const pid = this.#child.pid;
    if (pid === undefined) return false;
    try {
      const priority = getPriority();
      for (const tid of readdirSync(`/proc/${pid}/task`)) setPriority(Number(tid), priority);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * QEMU's threads as the host's scheduler sees them (`tid state nice cpu-seconds`), for the
   * line a quiet step gets (supervise.ts); empty when /proc does not tell.
   */
  threadStates(): string[] {
    const pid = this.#child.pid;
    if (pid === undefined) return [];
    try {
      return readdirSync(`/proc/${pid}/task`).map((tid) => {
        const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
        // Fields after the ")" of the command: state is the 1st, utime/stime the 12th/13th, nice the 17th.
        const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        const cpuSeconds = (Number(f[11]) + Number(f[12])) / 100;
        return `${tid} ${f[0]} nice=${f[16]} cpu=${cpuSeconds.toFixed(1)}s`;
      });
    } catch {
      return [];
    }
  }

  kill(): void {
    this.#child.kill('SIGKILL');
  }

  /**
   * Whether QEMU still runs: not reported exited, and not a zombie or gone in /proc (a kill -9
   * shows there before Node reaps the child).
   */
  alive(): boolean {
    if (this.#exited || this.#spawnError || this.#child.exitCode !== null || this.#child.signalCode !== null) return false;
    const pid = this.#child.pid;
    if (pid === undefined) return false;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
      return state !== 'Z' && state !== 'X';
    } catch {
      return false;
    }
  }
}
