/**
 * Watches the service's worker process while an attack runs: which pid it is (a new pid is a
 * restart), its resident memory (`/proc/<pid>/status` VmRSS every 100 ms, and VmHWM, the
 * kernel's own peak, which also sees spikes between samples: reset when watching starts, so
 * that it is this attack's), and its event-loop delay from its own `/metrics`. prom-client's
 * `nodejs_eventloop_lag_p99_seconds` / `_max_seconds` cover the time since the previous
 * scrape (it resets them), so they are scraped every 500 ms and the largest kept. A scrape the
 * worker answers late was held up by its event loop: that wait is a delay too, and the only
 * one seen when the worker dies before it can answer.
 */
import { readFile, writeFile } from 'node:fs/promises';
import type { Service } from '../service.ts';

export interface WorkerMeasurements {
  /** Every worker pid seen, in order; more than one means the worker restarted. */
  pids: number[];
  /** The largest VmRSS sampled or VmHWM read, of any worker process seen. */
  peakRssBytes: number;
  /** The largest VmHWM read (the kernel's peak RSS since the watch began, or the process started). */
  hwmBytes: number;
  /** Largest p99 of event-loop delay over one scrape interval, seconds. */
  loopP99MaxSeconds: number;
  /** Largest single event-loop delay the worker reported, seconds. */
  loopMaxSeconds: number;
  /** Longest a scrape waited for its answer, seconds (a blocked loop answers late or never). */
  slowestScrapeSeconds: number;
  scrapes: number;
  failedScrapes: number;
}

const RSS_EVERY_MS = 100;
const SCRAPE_EVERY_MS = 500;
const SCRAPE_TIMEOUT_MS = 300_000;

async function statusField(pid: number, field: 'VmRSS' | 'VmHWM'): Promise<number | undefined> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const kib = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1];
  return kib === undefined ? undefined : Number(kib) * 1024;
}

function gauge(text: string, name: string): number | undefined {
  const value = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1];
  return value === undefined ? undefined : Number(value);
}

export class WorkerWatch {
  private readonly m: WorkerMeasurements;
  private stopped = false;
  /** Ends a scrape still waiting when watching stops. */
  private readonly stopping = new AbortController();
  private readonly loops: Promise<void>[];

  private constructor(
    private readonly service: Service,
    private readonly metricsPort: number,
    firstPid: number,
  ) {
    this.m = { pids: [firstPid], peakRssBytes: 0, hwmBytes: 0, loopP99MaxSeconds: 0, loopMaxSeconds: 0, slowestScrapeSeconds: 0, scrapes: 0, failedScrapes: 0 };
    this.loops = [this.sampleMemory(), this.scrape()];
  }

  static async start(service: Service, metricsPort: number): Promise<WorkerWatch> {
    const pid = await service.workerPid();
    // 5 > clear_refs: VmHWM starts again from the current RSS (proc(5)).
    await writeFile(`/proc/${pid}/clear_refs`, '5').catch(() => {});
    const watch = new WorkerWatch(service, metricsPort, pid);
    // The first scrape resets what the worker measured before the attack.
    await new Promise((r) => setTimeout(r, SCRAPE_EVERY_MS));
    return watch;
  }

  get pids(): readonly number[] {
    return this.m.pids;
  }

  private async sampleMemory(): Promise<void> {
    while (!this.stopped) {
      const pid = await this.service.workerPid().catch(() => undefined);
      if (pid !== undefined) {
        if (this.m.pids.at(-1) !== pid) this.m.pids.push(pid);
        const hwm = (await statusField(pid, 'VmHWM')) ?? 0;
        this.m.hwmBytes = Math.max(this.m.hwmBytes, hwm);
        this.m.peakRssBytes = Math.max(this.m.peakRssBytes, hwm, (await statusField(pid, 'VmRSS')) ?? 0);
      }
      await new Promise((r) => setTimeout(r, RSS_EVERY_MS));
    }
  }

  private async scrape(): Promise<void> {
    while (!this.stopped) {
      const started = performance.now();
      try {
        const res = await fetch(`http://127.0.0.1:${this.metricsPort}/metrics`, { signal: AbortSignal.any([AbortSignal.timeout(SCRAPE_TIMEOUT_MS), this.stopping.signal]) });
        const text = await res.text();
        this.m.scrapes++;
        this.m.loopP99MaxSeconds = Math.max(this.m.loopP99MaxSeconds, gauge(text, 'nodejs_eventloop_lag_p99_seconds') ?? 0);
        this.m.loopMaxSeconds = Math.max(this.m.loopMaxSeconds, gauge(text, 'nodejs_eventloop_lag_max_seconds') ?? 0);
      } catch {
        // Refused (no worker: it died or is starting), timed out, or ended by stop().
        if (!this.stopped) this.m.failedScrapes++;
      }
      const took = performance.now() - started;
      this.m.slowestScrapeSeconds = Math.max(this.m.slowestScrapeSeconds, took / 1000);
      await new Promise((r) => setTimeout(r, Math.max(0, SCRAPE_EVERY_MS - took)));
    }
  }

  /** Stops watching (after one last scrape: the delays since the previous one count too). */
  async stop(): Promise<WorkerMeasurements> {
    await new Promise((r) => setTimeout(r, SCRAPE_EVERY_MS + 100));
    this.stopped = true;
    this.stopping.abort();
    await Promise.all(this.loops);
    return { ...this.m, pids: [...this.m.pids] };
  }
}
