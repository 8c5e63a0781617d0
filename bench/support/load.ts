/**
 * API load for `bench/build.ts`: autocannon (its CLI, `--json`, in a process of its own so its
 * load generation does not share the bench's event loop) against one URL, and the enqueue of
 * many tiny builds whose drain the API is measured during.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import type { Client } from './service.ts';

const require = createRequire(import.meta.url);

export interface CannonResult {
  /** Mean requests per second over the run (autocannon's per-second samples). */
  reqPerSec: number;
  /** 2xx responses per second over the whole duration. */
  okPerSec: number;
  p50: number;
  p99: number;
  maxMs: number;
  total: number;
  ok: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  durationS: number;
}

interface CannonJson {
  duration: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  '2xx': number;
  latency: { p50: number; p99: number; max: number };
  requests: { average: number; total: number };
}

const running = new Set<ChildProcess>();

/** Kill any autocannon still running (for the bench's cleanup). */
export function killCannons(): void {
  for (const child of running) child.kill('SIGKILL');
}

export async function autocannon(url: string, opts: { connections: number; durationS: number }): Promise<CannonResult> {
  const bin = require.resolve('autocannon');
  const child = spawn(process.execPath, [bin, '--json', '-c', String(opts.connections), '-d', String(opts.durationS), url], { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout?.on('data', (b: Buffer) => out.push(b));
  child.stderr?.on('data', (b: Buffer) => err.push(b));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (c) => resolve(c));
  }).finally(() => running.delete(child));
  const text = Buffer.concat(out).toString('utf8').trim();
  if (code !== 0 || !text.startsWith('{')) throw new Error(`autocannon failed (exit ${code}): ${Buffer.concat(err).toString('utf8').slice(-2000)}`);
  const j = JSON.parse(text) as CannonJson;
  return {
    reqPerSec: j.requests.average,
    okPerSec: j['2xx'] / j.duration,
    p50: j.latency.p50,
    p99: j.latency.p99,
    maxMs: j.latency.max,
    total: j.requests.total,
    ok: j['2xx'],
    non2xx: j.non2xx,
    errors: j.errors,
    timeouts: j.timeouts,
    durationS: j.duration,
  };
}

/** Run `fn` over `items` with at most `limit` at once. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    for (;;) {
      const i = next++;
      if (i >= items.length) return;
      results[i] = await fn(items[i] as T, i);
    }
  });
  await Promise.all(workers);
  return results;
}

export interface Enqueued {
  ids: string[];
  /** First POST sent → last 202 received. */
  ms: number;
  /** 429 answers that were retried. */
  retried429: number;
}

/**
 * Submits `count` tiny builds (distinct contents, so none is a cache hit of another), `parallel`
 * POSTs at a time; a 429 (queue quota) is retried after 100 ms and counted.
 */
export async function enqueueTinyBuilds(client: Client, count: number, parallel: number, tag: string): Promise<Enqueued> {
  let retried429 = 0;
  const t0 = process.hrtime.bigint();
  const ids = await mapLimit(
    Array.from({ length: count }, (_, i) => i),
    parallel,
    async (i) => {
      const spec = { name: 'bench-queue', tag: `${tag}-${i}`, contents: [{ text: `${tag} ${i}\n`, to: '/n.txt' }], compression: 'none' };
      for (;;) {
        const r = await client.json<{ id: string }>('POST', '/v1/builds', spec);
        if (r.status === 202) return r.body.id;
        if (r.status === 429) {
          retried429++;
          await new Promise((res) => setTimeout(res, 100));
          continue;
        }
        throw new Error(`tiny build ${i}: POST /v1/builds answered ${r.status}: ${r.text.slice(0, 500)}`);
      }
    },
  );
  return { ids, ms: Number(process.hrtime.bigint() - t0) / 1e6, retried429 };
}
