/**
 * Peak resident memory of the service's processes, per phase of the benchmark.
 *
 * Two sources, the larger wins: VmRSS sampled every `intervalMs` (50 ms), and the kernel's own
 * high-water mark VmHWM, read at the end of each phase. At the start of each phase VmHWM is reset
 * (`echo 5 > /proc/<pid>/clear_refs`, root), so each phase's peak is its own; where that reset
 * is refused, VmHWM is left out and only the samples count. The worker is found anew at every
 * sample (the child of the API process running workers/build-worker.ts); if it changes, the
 * restart is recorded. Only the processes themselves are counted, not their children (QEMU,
 * tar, mksquashfs).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { redisPidOf, workerPidOf } from './service.ts';

export type Role = 'api' | 'worker' | 'redis';
export const ROLES: readonly Role[] = ['api', 'worker', 'redis'];

function statusKb(pid: number, field: 'VmRSS' | 'VmHWM'): number | undefined {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

function resetHwm(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

export interface PhasePeaks {
  name: string;
  /** Peak RSS in bytes per role (undefined: the process was never seen). */
  peak: Partial<Record<Role, number>>;
  /** Whether VmHWM (reset at the phase start) contributed, per role. */
  fromHwm: Partial<Record<Role, boolean>>;
  ms: number;
}

export class RssMonitor {
  private timer: NodeJS.Timeout | undefined;
  private current: { name: string; t0: number; peak: Partial<Record<Role, number>>; hwmOk: Partial<Record<Role, boolean>>; pids: Partial<Record<Role, number>> } | undefined;
  readonly phases: PhasePeaks[] = [];
  readonly workerPids: number[] = [];
  /** Peak over everything, per role. */
  readonly overall: Partial<Record<Role, number>> = {};

  constructor(private readonly apiPid: number) {}

  private pids(): Partial<Record<Role, number>> {
    const worker = workerPidOf(this.apiPid);
    if (worker !== undefined && this.workerPids[this.workerPids.length - 1] !== worker) this.workerPids.push(worker);
    return { api: this.apiPid, worker, redis: redisPidOf(this.apiPid) };
  }

  private note(role: Role, bytes: number | undefined): void {
    if (bytes === undefined || !this.current) return;
    this.current.peak[role] = Math.max(this.current.peak[role] ?? 0, bytes);
    this.overall[role] = Math.max(this.overall[role] ?? 0, bytes);
  }

  private sample(): void {
    if (!this.current) return;
    const pids = this.pids();
    for (const role of ROLES) {
      const pid = pids[role];
      if (pid === undefined) continue;
      if (this.current.pids[role] !== pid) {
        // a process new to this phase (first sample, or a restarted worker): its HWM is its own
        this.current.pids[role] = pid;
        this.current.hwmOk[role] = resetHwm(pid);
      }
      const kb = statusKb(pid, 'VmRSS');
      this.note(role, kb === undefined ? undefined : kb * 1024);
    }
  }

  start(intervalMs = 50): void {
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  /** Ends the running phase (if any) and starts `name`. */
  phase(name: string): void {
    this.endPhase();
    this.current = { name, t0: Date.now(), peak: {}, hwmOk: {}, pids: {} };
    this.sample();
  }

  endPhase(): PhasePeaks | undefined {
    const c = this.current;
    if (!c) return undefined;
    for (const role of ROLES) {
      const pid = c.pids[role];
      if (pid === undefined || !c.hwmOk[role]) continue;
      const kb = statusKb(pid, 'VmHWM');
      this.note(role, kb === undefined ? undefined : kb * 1024);
    }
    this.current = undefined;
    const done: PhasePeaks = { name: c.name, peak: c.peak, fromHwm: c.hwmOk, ms: Date.now() - c.t0 };
    this.phases.push(done);
    return done;
  }

  stop(): void {
    this.endPhase();
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
