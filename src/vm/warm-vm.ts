/**
 * A warm VM: QEMU booted ahead of its job with every disk of a step attached (see
 * step-files.ts), its guest waiting on its log port (ttyS1 on amd64, hvc0 on arm64). The
 * protocol on that port (QEMU's stdio):
 *
 *   guest → host  `baler-ready\n`  booted, waiting (nothing else may come before or after it)
 *   host → guest  `go\n`           the job's inputs are in the disk files: start
 *   guest → host  `baler-go\n`     caches dropped, the job runs; all that follows is its log
 *              or `baler-short DEV SECTORS\n`  an input disk has not the size of a warm VM's input
 *                                  file (QEMU sized it while a job rewrote the file): the VM stops
 *
 * A VM that exits, says anything else, is not ready within the boot timeout or does not answer
 * `go` in time is killed, and whoever waits on it gets WarmVmLost: it never ran a job.
 */
import { rm } from 'node:fs/promises';
import { QemuProcess } from './qemu-process.ts';

const READY = Buffer.from('baler-ready\n');
const GO_ACK = Buffer.from('baler-go\n');
const SHORT_DISK = Buffer.from('baler-short ');

/** Whether `said` so far is the start of `line`, or `line` the start of `said`. */
function couldBecome(said: Buffer, line: Buffer): boolean {
  const n = Math.min(said.length, line.length);
  return said.subarray(0, n).equals(line.subarray(0, n));
}

/** The warm VM died or misbehaved before it took the job: nothing of the job ran; run it elsewhere. */
export class WarmVmLost extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WarmVmLost';
  }
}

type Stage = 'booting' | 'ready' | 'going' | 'running' | 'dead';

export interface WarmVmOptions {
  /** The limits it was booted with: memory as given to QEMU, the scratch disk's size. */
  memoryMiB: number;
  diskMiB: number;
  /** Killed when not ready by then. */
  bootTimeoutMs: number;
  /**
   * Boot at this much lower CPU priority, so that a VM waiting for a future job does not slow
   * the jobs running now; take() raises it back (only give it when that is allowed).
   */
  nice?: number;
  /** Told once how the boot went: ready, or dead or killed before (not when discarded on purpose). */
  onBootEnd?: (ok: boolean) => void;
}

export class WarmVm {
  readonly dir: string;
  readonly memoryMiB: number;
  readonly diskMiB: number;
  readonly proc: QemuProcess;
  readonly startedAt = Date.now();
  /** When the guest said it is ready (ms since the epoch). */
  readyAt: number | undefined;
  /** Resolves when the guest is ready; rejects with WarmVmLost when it dies or misbehaves first. */
  readonly ready: Promise<void>;
  #stage: Stage = 'booting';
  #taken = false;
  #problem: string | undefined;
  #buffer = Buffer.alloc(0);
  #sink: ((chunk: Buffer) => void) | undefined;
  #settleReady!: { resolve: () => void; reject: (err: WarmVmLost) => void };
  #ack: { resolve: () => void; reject: (err: WarmVmLost) => void } | undefined;
  readonly #bootTimer: NodeJS.Timeout;
  #discarded: Promise<void> | undefined;
  #niced: boolean;
  readonly #onBootEnd: ((ok: boolean) => void) | undefined;

  /** Starts QEMU with `args` (which attach the files in `dir`); `dir` is the VM's from now on. */
  constructor(dir: string, binary: string, args: readonly string[], opts: WarmVmOptions) {
    this.dir = dir;
    this.memoryMiB = opts.memoryMiB;
    this.diskMiB = opts.diskMiB;
    this.ready = new Promise<void>((resolve, reject) => {
      this.#settleReady = { resolve, reject };
    });
    this.ready.catch(() => {
      /* observed by whoever waits; the pool watches the process */
    });
    this.#onBootEnd = opts.onBootEnd;
    this.proc = new QemuProcess(binary, args, { stdin: true, nice: opts.nice });
    this.#niced = (opts.nice ?? 0) > 0;
    this.proc.onStdout((chunk) => this.#onStdout(chunk));
    this.#bootTimer = setTimeout(() => this.#misbehaved(`not ready after ${opts.bootTimeoutMs / 1000} s`), opts.bootTimeoutMs);
    this.#bootTimer.unref();
    void this.proc.exited.then((code) => {
      clearTimeout(this.#bootTimer);
      if (this.#stage === 'running') return; // the job's exit: its supervisor reads it
      // A boot that went wrong, not one cut short by discard() while all was well.
      if (this.#stage === 'booting' && (this.#problem !== undefined || this.#discarded === undefined)) this.#onBootEnd?.(false);
      this.#stage = 'dead';
      const spawnError = this.proc.spawnError;
      const why = this.#problem ?? (spawnError ? `cannot start ${binary}: ${spawnError.message}` : `QEMU exited (code ${code}) ${this.proc.stderr.trim().slice(0, 500)}`.trim());
      this.#problem ??= why;
      const lost = new WarmVmLost(`the warm VM was lost: ${why}`);
      this.#settleReady.reject(lost);
      this.#ack?.reject(lost);
      this.#ack = undefined;
    });
  }

  get stage(): Stage {
    return this.#stage;
  }

  /** Why it was killed or died, when it was. */
  get problem(): string | undefined {
    return this.#problem;
  }

  get taken(): boolean {
    return this.#taken;
  }

  /** Fit for a job: booting or ready, not taken, nothing wrong seen, QEMU alive. */
  usable(): boolean {
    return !this.#taken && (this.#stage === 'booting' || this.#stage === 'ready') && this.#problem === undefined && this.proc.alive();
  }

  /** Reserves it for one job (the pool forgets it), at the CPU priority of the jobs. */
  take(): void {
    if (!this.usable()) throw new Error('this warm VM cannot take a job');
    this.#taken = true;
    // Should it fail, the job runs niced: slower only while the host is busy.
    if (this.#niced) this.proc.raisePriority();
  }

  /**
   * Hands the job over: its inputs must be in the disk files and the VM ready. Resolves once
   * the guest confirmed; from then on its output goes to `sink`. Rejects with WarmVmLost
   * (the VM killed) when it does not confirm within `ackTimeoutMs`.
   */
  go(sink: (chunk: Buffer) => void, ackTimeoutMs: number): Promise<void> {
    if (this.#stage !== 'ready') return Promise.reject(new WarmVmLost(`the warm VM is not ready (${this.#problem ?? this.#stage})`));
    this.#stage = 'going';
    this.#sink = sink;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => this.#misbehaved(`no answer to go within ${ackTimeoutMs / 1000} s`), ackTimeoutMs);
      this.#ack = {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      // Again, now that QEMU surely runs: taken at once after its spawn, the raise in take()
      // can come before `nice` execs QEMU at the lower priority, which would then stay.
      if (this.#niced) this.proc.raisePriority();
      this.proc.send('go\n');
    });
  }

  /** Kills QEMU (when running) and removes its files. Idempotent. */
  discard(): Promise<void> {
    this.#discarded ??= (async () => {
      clearTimeout(this.#bootTimer);
      this.proc.kill();
      await this.proc.exited;
      await rm(this.dir, { recursive: true, force: true });
    })();
    return this.#discarded;
  }

  #misbehaved(problem: string): void {
    if (this.#stage === 'running' || this.#stage === 'dead') return;
    this.#problem ??= problem;
    this.proc.kill(); // the exit rejects whoever waits
  }

  #onStdout(chunk: Buffer): void {
    switch (this.#stage) {
      case 'booting': {
        this.#buffer = Buffer.concat([this.#buffer, chunk]);
        const at = this.#buffer.indexOf(READY);
        if (at < 0) {
          if (this.#buffer.length > 4096) this.#misbehaved('unexpected output while booting');
          return;
        }
        if (at > 0 || this.#buffer.length > at + READY.length) {
          this.#misbehaved(`unexpected output while booting: ${JSON.stringify(this.#buffer.subarray(0, 200).toString('latin1'))}`);
          return;
        }
        this.#buffer = Buffer.alloc(0);
        clearTimeout(this.#bootTimer);
        this.#stage = 'ready';
        this.readyAt = Date.now();
        this.#onBootEnd?.(true);
        this.#settleReady.resolve();
        return;
      }
      case 'ready':
        this.#misbehaved(`unexpected output while waiting: ${JSON.stringify(chunk.subarray(0, 200).toString('latin1'))}`);
        return;
      case 'going': {
        this.#buffer = Buffer.concat([this.#buffer, chunk]);
        if (couldBecome(this.#buffer, SHORT_DISK)) {
          // `baler-short DEV SECTORS`: QEMU sized an input disk while the job rewrote its file.
          const end = this.#buffer.indexOf(0x0a);
          if (end < 0 && this.#buffer.length < 200) return;
          const said = this.#buffer.subarray(0, end < 0 ? 200 : end).toString('latin1');
          this.#misbehaved(`an input disk is shorter than its file (QEMU opened it while the job was being written): ${JSON.stringify(said)}`);
          return;
        }
        if (!couldBecome(this.#buffer, GO_ACK)) {
          this.#misbehaved(`unexpected answer to go: ${JSON.stringify(this.#buffer.subarray(0, 200).toString('latin1'))}`);
          return;
        }
        if (this.#buffer.length < GO_ACK.length) return;
        const rest = this.#buffer.subarray(GO_ACK.length);
        this.#buffer = Buffer.alloc(0);
        this.#stage = 'running';
        this.#ack?.resolve();
        this.#ack = undefined;
        if (rest.length > 0) this.#sink?.(rest);
        return;
      }
      case 'running':
        this.#sink?.(chunk);
        return;
      case 'dead':
        return;
    }
  }
}
