/** What the benchmark ran on, and which accelerator QEMU actually got. */
import { existsSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { availableParallelism, totalmem, release } from 'node:os';
import { run } from '../../test/support/run.ts';

export interface Machine {
  nproc: number;
  cpuModel: string;
  /** vmx or svm in /proc/cpuinfo. */
  hardwareVirt: boolean;
  devKvm: boolean;
  memGiB: number;
  kernel: string;
  node: string;
  qemu: string;
  buildah: string;
  runc: string;
}

async function firstLine(cmd: string, args: string[]): Promise<string> {
  try {
    const r = await run(cmd, args, { timeoutMs: 30_000 });
    return (r.stdout.split('\n')[0] ?? '').trim() || `exit ${r.code}`;
  } catch {
    return 'missing';
  }
}

export async function machineInfo(buildahVersion: string): Promise<Machine> {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1]?.trim() ?? 'unknown';
  return {
    nproc: availableParallelism(),
    cpuModel: model,
    hardwareVirt: /^flags\s*:.*\b(vmx|svm)\b/m.test(cpuinfo),
    devKvm: existsSync('/dev/kvm'),
    memGiB: Math.round(totalmem() / 1024 ** 3),
    kernel: release(),
    node: process.version,
    qemu: await firstLine('qemu-system-x86_64', ['--version']),
    buildah: buildahVersion,
    runc: await firstLine('runc', ['--version']),
  };
}

/**
 * Watches for QEMU processes started by this process and records the accelerator on their
 * command line (`-accel X` or `accel=X` in `-machine`), so the results say what was used, not
 * what was asked for.
 */
export class QemuWatcher {
  readonly accels = new Set<string>();
  /** QEMU processes of other process trees seen meanwhile: they share the CPUs and disturb timings. */
  readonly foreign = new Set<number>();
  private readonly seen = new Set<number>();
  private timer: NodeJS.Timeout | undefined;

  start(intervalMs = 100): void {
    this.timer = setInterval(() => this.scan(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** QEMU processes seen so far. */
  get count(): number {
    return this.seen.size;
  }

  private scan(): void {
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      const pid = Number(entry);
      if (this.seen.has(pid) || this.foreign.has(pid)) continue;
      try {
        if (!readlinkSync(`/proc/${pid}/exe`).includes('qemu-system')) continue;
        if (!descendsFromUs(pid)) {
          this.foreign.add(pid);
          continue;
        }
        const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
        this.seen.add(pid);
        const i = argv.indexOf('-accel');
        if (i >= 0 && argv[i + 1]) this.accels.add(argv[i + 1]?.split(',')[0] ?? '');
        for (const a of argv) {
          const m = /(?:^|,)accel=([a-z:]+)/.exec(a);
          if (m?.[1]) this.accels.add(m[1]);
        }
        if (i < 0 && !argv.some((a) => a.includes('accel='))) this.accels.add('default (tcg)');
      } catch {
        /* gone, or not ours to read */
      }
    }
  }
}

function descendsFromUs(pid: number): boolean {
  let p = pid;
  for (let hops = 0; hops < 8 && p > 1; hops++) {
    const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid === process.pid) return true;
    p = ppid;
  }
  return false;
}

function isQemu(pid: number): boolean {
  try {
    return readlinkSync(`/proc/${pid}/exe`).includes('qemu-system');
  } catch {
    return false;
  }
}

/** Live QEMU processes that are not ours (other engineers' tests share this machine's CPUs). */
export function foreignQemuPids(): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    try {
      if (isQemu(pid) && !descendsFromUs(pid)) pids.push(pid);
    } catch {
      /* gone */
    }
  }
  return pids;
}

/** Waits until no foreign QEMU runs, up to `maxMs`. Returns how long it waited, or -1 if it gave up. */
export async function waitForQuiet(maxMs: number): Promise<number> {
  const t0 = Date.now();
  while (foreignQemuPids().length > 0) {
    if (Date.now() - t0 >= maxMs) return -1;
    await new Promise((r) => setTimeout(r, 500));
  }
  return Date.now() - t0;
}
