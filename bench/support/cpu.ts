/**
 * Someone else's CPU use while we measure. This machine is shared (other engineers' tests and
 * type checks run on the same 2 cores), so the bench says how much CPU others took during each
 * timed side, and can wait for a quiet moment before one.
 *
 * Foreign CPU = the machine's busy time (/proc/stat: user+nice+system+irq+softirq+steal) minus the
 * CPU time of our processes: the bench itself with every child it has reaped (utime, stime,
 * cutime, cstime of /proc/self/stat: buildah, tar, autocannon), and the service's API, worker
 * (with its reaped children: QEMU, tar, mksquashfs) and redis-server. Expressed in cores
 * (1.0 = one core busy the whole time).
 */
import { readFileSync } from 'node:fs';

function machineTicks(): { busy: number; all: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = f;
  const busy = user + nice + system + irq + softirq + steal;
  return { busy, all: busy + idle + iowait };
}

/** utime + stime + cutime + cstime of `pid`, in clock ticks (0 if gone). */
function processTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // after the comm: state(0) ppid(1) … utime(11) stime(12) cutime(13) cstime(14)
    return Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
  } catch {
    return 0;
  }
}

export interface CpuMark {
  t: number;
  busy: number;
  all: number;
  ours: Map<number, number>;
}

export class ForeignCpu {
  /** `ourPids`: the processes besides this one whose CPU is ours (the service's). */
  constructor(private readonly ourPids: () => (number | undefined)[]) {}

  mark(): CpuMark {
    const m = machineTicks();
    const ours = new Map<number, number>();
    for (const pid of [process.pid, ...this.ourPids()]) if (pid !== undefined) ours.set(pid, processTicks(pid));
    return { t: Date.now(), busy: m.busy, all: m.all, ours };
  }

  /** Cores that others kept busy between `a` and now (or `b`). */
  foreignCores(a: CpuMark, b: CpuMark = this.mark()): number {
    let ours = 0;
    for (const [pid, ticks] of b.ours) ours += ticks - (a.ours.get(pid) ?? ticks);
    const all = b.all - a.all;
    if (all <= 0) return 0;
    const cores = (b.all - a.all) / ((b.t - a.t) / 1000) / 100; // ticks per second / USER_HZ
    const foreignShare = Math.max(0, (b.busy - a.busy - ours) / all);
    return foreignShare * (Number.isFinite(cores) && cores > 0 ? cores : 1);
  }

  /**
   * Waits (up to `maxMs`) until others use at most `thresholdCores` over a 1 s window.
   * Returns how long it waited and the last window's foreign load; waitedMs is -1 if it gave up.
   */
  async waitForQuiet(maxMs: number, thresholdCores: number): Promise<{ waitedMs: number; cores: number }> {
    const t0 = Date.now();
    for (;;) {
      const a = this.mark();
      await new Promise((r) => setTimeout(r, 1000));
      const cores = this.foreignCores(a);
      if (cores <= thresholdCores) return { waitedMs: Date.now() - t0 - 1000, cores };
      if (Date.now() - t0 >= maxMs) return { waitedMs: -1, cores };
    }
  }
}
