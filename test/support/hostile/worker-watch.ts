/**
 * Watches the service's worker process while an attack runs: which pid it is (a new pid is a
 * restart), its resident memory (`/proc/<pid>/status` VmRSS every 100 ms, and VmHWM, the
 * kernel's own peak, which also sees spikes between samples: reset when watching starts, so
 * that it is this attack's), and its event-loop delay from its own `/metrics`. prom-client's
 * `nodejs_eventloop_lag_p99_seconds` / `_max_seconds` cover the time since the previous
 * scrape (it resets them), so they are scraped every 2 s and the largest kept: with a sample
 * every 10 ms, a 2 s window's p99 is its third-largest delay, where a 500 ms window's is its
 * largest (one GC pause would be "p99"); the max is kept apart. Windows in a restarted
 * worker's first seconds (after a new `process_start_time_seconds`: loading its modules) are
 * its start's, not the attack's, and are left out. A scrape the worker answers late was held
 * up by its event loop: that wait is a delay too, and the only one seen when the worker dies
 * before it can answer.
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
  /** Scrapes whose event-loop delays counted (not the first, not in a restarted worker's start). */
  countedScrapes: number;
  failedScrapes: number;
}

const RSS_EVERY_MS = 100;
const SCRAPE_EVERY_MS = 2000;
const SCRAPE_TIMEOUT_MS = 300_000;
const FINAL_SCRAPE_TIMEOUT_MS = 5_000;
/** A worker's first seconds (loading and compiling its modules, connecting) are its start's, not an attack's. */
const WORKER_START_S = 15;

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
  /** Ends a scrape still waiting, or the wait for the next, when watching stops. */
  private readonly stopping = new AbortController();
  private readonly loops: Promise<void>[];
  private readonly firstScrape: Promise<void>;
  private firstScraped!: () => void;

  private constructor(
    private readonly service: Service,
    private readonly metricsPort: number,
    firstPid: number,
  ) {
    this.m = { pids: [firstPid], peakRssBytes: 0, hwmBytes: 0, loopP99MaxSeconds: 0, loopMaxSeconds: 0, slowestScrapeSeconds: 0, scrapes: 0, countedScrapes: 0, failedScrapes: 0 };
    this.firstScrape = new Promise((resolve) => (this.firstScraped = resolve));
    this.loops = [this.sampleMemory(), this.scrape()];
  }

  static async start(service: Service, metricsPort: number): Promise<WorkerWatch> {
    const pid = await service.workerPid();
    // 5 > clear_refs: VmHWM starts again from the current RSS (proc(5)).
    await writeFile(`/proc/${pid}/clear_refs`, '5').catch(() => {});
    const watch = new WorkerWatch(service, metricsPort, pid);
    // The first scrape resets what the worker measured before the attack (and is not counted).
    await watch.firstScrape;
    return watch;
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

  /** Scrapes until stopped, then once more (the delays since the previous scrape count too). */
  private async scrape(): Promise<void> {
    let processStart: number | undefined;
    let firstProcessStart: number | undefined;
    for (;;) {
      const final = this.stopped;
      const started = performance.now();
      // A blocked worker may never answer: the final scrape waits a little, the others long.
      const timeout = AbortSignal.timeout(final ? FINAL_SCRAPE_TIMEOUT_MS : SCRAPE_TIMEOUT_MS);
      try {
        const res = await fetch(`http://127.0.0.1:${this.metricsPort}/metrics`, { signal: final ? timeout : AbortSignal.any([timeout, this.stopping.signal]) });
        const text = await res.text();
        this.m.scrapes++;
        const start = gauge(text, 'process_start_time_seconds') ?? 0;
        firstProcessStart ??= start;
        const restarted = start !== firstProcessStart;
        // Not the first window (before the attack), nor one in a restarted worker's first seconds.
        if (processStart !== undefined && start === processStart && !(restarted && Date.now() / 1000 - start < WORKER_START_S)) {
          this.m.countedScrapes++;
          this.m.loopP99MaxSeconds = Math.max(this.m.loopP99MaxSeconds, gauge(text, 'nodejs_eventloop_lag_p99_seconds') ?? 0);
          this.m.loopMaxSeconds = Math.max(this.m.loopMaxSeconds, gauge(text, 'nodejs_eventloop_lag_max_seconds') ?? 0);
        }
        processStart = start;
      } catch {
        // Refused (no worker: it died or is starting), timed out, or cut short by stop().
        if (!this.stopping.signal.aborted || final) this.m.failedScrapes++;
      }
      this.firstScraped();
      const took = performance.now() - started;
      this.m.slowestScrapeSeconds = Math.max(this.m.slowestScrapeSeconds, took / 1000);
      if (final) return;
      if (!this.stopped) await sleep(Math.max(0, SCRAPE_EVERY_MS - took), this.stopping.signal);
    }
  }

  async stop(): Promise<WorkerMeasurements> {
    this.stopped = true;
    this.stopping.abort();
    await Promise.all(this.loops);
    return { ...this.m, pids: [...this.m.pids] };
  }
}

/** Waits `ms`, or less when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}
