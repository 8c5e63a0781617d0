/**
 * A pool of warm VMs: keeps `size` of them booting or ready, hands each out once (take()),
 * and boots a replacement at once. A VM that dies or misbehaves while waiting is dropped (its
 * files removed) and replaced; when VMs keep failing with no job taken in between, replacements
 * back off (1 s, 2 s, ... up to a minute). close() kills and removes every VM not handed out.
 */
import type { Logger } from '../log.ts';
import { consoleText } from './step-outcome.ts';
import type { WarmVm } from './warm-vm.ts';

const MAX_BACKOFF_MS = 60_000;

export interface VmPoolOptions {
  size: number;
  /** Makes a warm VM's files and starts its QEMU. */
  boot: () => Promise<WarmVm>;
  logger?: Logger;
}

export interface WarmVmInfo {
  pid: number | undefined;
  dir: string;
  ready: boolean;
}

export class VmPool {
  readonly size: number;
  readonly #boot: () => Promise<WarmVm>;
  readonly #logger: Logger | undefined;
  /** Not handed out: booting or ready. */
  readonly #vms: WarmVm[] = [];
  /** boot() calls not yet settled. */
  #starting = 0;
  #closed = false;
  /** VMs that failed to start, died or misbehaved since one was last handed out. */
  #failures = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  /** Boots and discards in flight, for close() to wait on. */
  readonly #tasks = new Set<Promise<unknown>>();

  constructor(options: VmPoolOptions) {
    this.size = options.size;
    this.#boot = options.boot;
    this.#logger = options.logger;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Starts booting VMs up to the size. */
  start(): void {
    this.#fill();
  }

  /** The VMs waiting in the pool. */
  vms(): WarmVmInfo[] {
    return this.#vms.map((vm) => ({ pid: vm.proc.pid, dir: vm.dir, ready: vm.stage === 'ready' && vm.usable() }));
  }

  /**
   * One VM for one job, ready ones first, then the one booting longest; undefined when the
   * pool has none. It is the caller's from now on (run it, or discard() it).
   */
  take(): WarmVm | undefined {
    if (this.#closed) return undefined;
    const order = [...this.#vms].sort((a, b) => rank(a) - rank(b) || a.startedAt - b.startedAt);
    let taken: WarmVm | undefined;
    for (const vm of order) {
      if (!vm.usable()) {
        // Dead or wrong but not reported yet: drop it now rather than hand it out.
        this.#drop(vm, vm.problem ?? 'QEMU is not running');
        continue;
      }
      this.#remove(vm);
      vm.take();
      this.#failures = 0;
      taken = vm;
      break;
    }
    this.#fill();
    return taken;
  }

  /** Kills and removes every VM not handed out; boots in flight are discarded as they come. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    for (const vm of this.#vms.splice(0)) this.#track(vm.discard());
    while (this.#tasks.size > 0) await Promise.allSettled([...this.#tasks]);
  }

  #track<T>(p: Promise<T>): void {
    this.#tasks.add(p);
    void p.finally(() => this.#tasks.delete(p)).catch(() => {});
  }

  #remove(vm: WarmVm): boolean {
    const i = this.#vms.indexOf(vm);
    if (i < 0) return false;
    this.#vms.splice(i, 1);
    return true;
  }

  #fill(): void {
    while (!this.#closed && this.#retryTimer === undefined && this.#vms.length + this.#starting < this.size) {
      this.#starting++;
      this.#track(
        this.#boot().then(
          (vm) => {
            this.#starting--;
            if (this.#closed) {
              this.#track(vm.discard());
              return;
            }
            this.#vms.push(vm);
            this.#watch(vm);
          },
          (err: unknown) => {
            this.#starting--;
            this.#logger?.warn({ err }, 'VM pool: cannot start a warm VM');
            this.#failed();
          },
        ),
      );
    }
  }

  #watch(vm: WarmVm): void {
    vm.ready.then(
      () => {
        this.#logger?.debug({ bootMs: (vm.readyAt ?? Date.now()) - vm.startedAt, pid: vm.proc.pid }, 'VM pool: warm VM ready');
      },
      () => {},
    );
    void vm.proc.exited.then(() => {
      // Handed out: its job owns it. Otherwise it died or was killed while waiting.
      if (!vm.taken) this.#drop(vm, vm.problem ?? 'QEMU exited');
    });
  }

  /** Forgets a VM that died or misbehaved while waiting, removes it, and boots another. */
  #drop(vm: WarmVm, problem: string): void {
    if (!this.#remove(vm)) return;
    const wasReady = vm.readyAt !== undefined;
    this.#track(
      (async () => {
        const console = consoleText(vm.proc.console, 1500);
        await vm.discard();
        if (!this.#closed) this.#logger?.warn({ pid: vm.proc.pid, problem, wasReady, console }, 'VM pool: dropped a warm VM; booting another');
      })(),
    );
    this.#failed();
  }

  #failed(): void {
    this.#failures++;
    if (this.#closed) return;
    // The first loss is replaced at once; when they keep failing, replacements back off.
    const delay = this.#failures <= 1 ? 0 : Math.min(MAX_BACKOFF_MS, 1000 * 2 ** (this.#failures - 2));
    if (delay === 0) {
      this.#fill();
      return;
    }
    if (this.#retryTimer) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#fill();
    }, delay);
    this.#retryTimer.unref();
  }
}

function rank(vm: WarmVm): number {
  return vm.stage === 'ready' ? 0 : 1;
}
