/**
 * node --import tsx bench/gzip.ts [--runs N] [--mb N] [--concurrency N]: gzip throughput.
 *
 * The same deterministic buffer (--mb MB, default 200: half random, half text-like), fed as
 * 64 KiB chunks, compressed by
 *  1. Node's createGzip({ level: 6 }) (single-threaded: one zlib stream),
 *  2. parallelGzip at concurrency 1 (our block scheme, one block at a time),
 *  3. parallelGzip at the default concurrency (or --concurrency),
 *  4. `pigz -p 2 -6` over a pipe, for comparison, when /usr/bin/pigz exists.
 * Rounds interleave the methods (N rounds, default 5) so that load from others on this shared
 * machine spreads over all of them; before each timed run we wait (up to --quiet-wait seconds,
 * default 60) until the CPUs are mostly idle, and each run records how many cores others used
 * meanwhile (from /proc/stat minus our own CPU time), shown as a column: a parallel speedup
 * needs free cores, so read the numbers with it. A run during which others used more than
 * --max-others cores (default 0.25) is done again, up to --retries times (default 3); the last
 * try counts either way. Also shown: the cores we used (our CPU time / wall time: about 1 for
 * one zlib stream, about 2 when the threadpool really works in parallel on 2 cores).
 * Prints medians with MB/s, then one line
 * `bench:gzip: single_mbps=… parallel_mbps=… speedup=…` (speedup = parallel / createGzip).
 * Never part of `npm test`.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import zlib from 'node:zlib';
import { BLOCK_SIZE } from '../src/image/gzip/deflate-block.ts';
import { parallelGzip } from '../src/image/gzip/parallel-gzip.ts';
import { defaultConcurrency } from '../src/image/gzip/piece-stream.ts';
import { mixedData } from '../test/image/gzip/support.ts';
import { markdownTable, summarize } from './support/stats.ts';

const { values: opts } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    mb: { type: 'string', default: '200' },
    concurrency: { type: 'string' },
    'quiet-wait': { type: 'string', default: '60' },
    'max-others': { type: 'string', default: '0.25' },
    retries: { type: 'string', default: '3' },
  },
  strict: true,
});
const RUNS = Number(opts.runs);
const MB = Number(opts.mb);
if (!Number.isSafeInteger(RUNS) || RUNS < 1) throw new Error(`--runs must be a positive integer, got ${opts.runs}`);
if (!(MB > 0)) throw new Error(`--mb must be a positive number, got ${opts.mb}`);
const QUIET_WAIT_S = Number(opts['quiet-wait']);
if (!(QUIET_WAIT_S >= 0)) throw new Error(`--quiet-wait must be a number of seconds, got ${opts['quiet-wait']}`);
const MAX_OTHERS = Number(opts['max-others']);
const RETRIES = Number(opts.retries);
if (!(MAX_OTHERS >= 0)) throw new Error(`--max-others must be a number of cores, got ${opts['max-others']}`);
if (!Number.isSafeInteger(RETRIES) || RETRIES < 0) throw new Error(`--retries must be a non-negative integer, got ${opts.retries}`);
const CONCURRENCY = opts.concurrency === undefined ? defaultConcurrency() : Number(opts.concurrency);
const PIGZ = '/usr/bin/pigz';

function progress(text: string): void {
  process.stderr.write(`bench:gzip: ${text}\n`);
}

const CHUNK = 64 * 1024;
const data = mixedData(Math.round(MB * 1e6), 'bench');
const chunks: Buffer[] = [];
for (let offset = 0; offset < data.length; offset += CHUNK) chunks.push(data.subarray(offset, offset + CHUNK));

interface Outcome {
  ms: number;
  size: number;
  /** Only for the untimed warm-up runs. */
  sha256?: string;
  /** Average number of cores busy with other processes during the run. */
  othersCores: number;
  /** Average number of cores we used (this process and its children). */
  ownCores: number;
}

// CPU accounting, all in clock ticks (USER_HZ, 100 on Linux)
const HZ = 100;

/** Busy and total ticks of all CPUs together, from /proc/stat. */
function systemTicks(): { busy: number; total: number } {
  const fields = (readFileSync('/proc/stat', 'utf8').split('\n')[0] as string).trim().split(/\s+/).slice(1).map(Number);
  const total = fields.slice(0, 8).reduce((a, b) => a + b, 0); // user..steal (guest is inside user)
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0); // idle + iowait
  return { busy: total - idle, total };
}

/** Our CPU ticks: this process (all its threads, the threadpool included) plus reaped children (pigz). */
function ownTicks(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const fields = stat
    .slice(stat.lastIndexOf(')') + 2)
    .split(' ')
    .map(Number);
  // fields[0] is field 3 (state): utime 14, stime 15, cutime 16, cstime 17
  return (fields[11] ?? 0) + (fields[12] ?? 0) + (fields[13] ?? 0) + (fields[14] ?? 0);
}

interface CpuMark {
  system: { busy: number; total: number };
  own: number;
  t0: bigint;
}

function cpuMark(): CpuMark {
  return { system: systemTicks(), own: ownTicks(), t0: process.hrtime.bigint() };
}

/** Elapsed ms, and the average number of cores others kept busy since the mark. */
function cpuSince(mark: CpuMark): { ms: number; othersCores: number; ownCores: number } {
  const ms = Number(process.hrtime.bigint() - mark.t0) / 1e6;
  const own = ownTicks() - mark.own;
  const others = systemTicks().busy - mark.system.busy - own;
  return { ms, othersCores: Math.max(0, others / HZ / (ms / 1000)), ownCores: own / HZ / (ms / 1000) };
}

/** Waits (up to QUIET_WAIT_S) until others use less than 0.3 cores over a second; returns the last reading. */
async function waitForQuiet(): Promise<number> {
  const deadline = Date.now() + QUIET_WAIT_S * 1000;
  for (;;) {
    const mark = cpuMark();
    await new Promise((r) => setTimeout(r, 1000));
    const { othersCores } = cpuSince(mark);
    if (othersCores < 0.3 || Date.now() >= deadline) return othersCores;
  }
}

const sizeSink = (onChunk: (chunk: Buffer) => void): Writable =>
  new Writable({
    write(chunk: Buffer, _encoding, callback) {
      onChunk(chunk);
      callback();
    },
  });

/** Compresses `data` (as 64 KiB chunks) through `make()`; hashes the output only when asked (hashing costs main-thread CPU). */
async function timeTransform(make: () => NodeJS.ReadWriteStream | ((source: Readable) => Readable), withHash: boolean): Promise<Outcome> {
  const hash = withHash ? createHash('sha256') : undefined;
  let size = 0;
  const sink = sizeSink((chunk) => {
    size += chunk.length;
    hash?.update(chunk);
  });
  const mark = cpuMark();
  const transform = make();
  if (typeof transform === 'function') await pipeline(transform(Readable.from(chunks)), sink);
  else await pipeline(Readable.from(chunks), transform, sink);
  return { ...cpuSince(mark), size, sha256: hash?.digest('hex') };
}

async function timePigz(withHash: boolean): Promise<Outcome> {
  const hash = withHash ? createHash('sha256') : undefined;
  let size = 0;
  const mark = cpuMark();
  const child = spawn(PIGZ, ['-p', '2', '-6', '-c'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise<number>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve(code ?? -1));
  });
  const drained = pipeline(
    child.stdout,
    sizeSink((chunk) => {
      size += chunk.length;
      hash?.update(chunk);
    }),
  );
  await Promise.all([pipeline(Readable.from(chunks), child.stdin), drained]);
  const code = await exited;
  if (code !== 0) throw new Error(`pigz exited with ${code}`);
  return { ...cpuSince(mark), size, sha256: hash?.digest('hex') };
}

interface Method {
  name: string;
  run: (withHash: boolean) => Promise<Outcome>;
  samples: number[];
  others: number[];
  own: number[];
  outcome?: Outcome;
}

const methods: Method[] = [
  { name: 'node createGzip level 6 (single thread)', run: (h) => timeTransform(() => zlib.createGzip({ level: 6 }), h), samples: [], others: [], own: [] },
  { name: 'parallelGzip concurrency 1', run: (h) => timeTransform(() => (s: Readable) => parallelGzip(s, { concurrency: 1 }), h), samples: [], others: [], own: [] },
  {
    name: `parallelGzip concurrency ${CONCURRENCY}${opts.concurrency === undefined ? ' (default)' : ''}`,
    run: (h) => timeTransform(() => (s: Readable) => parallelGzip(s, { concurrency: CONCURRENCY }), h),
    samples: [],
    others: [],
    own: [],
  },
];
const hasPigz = existsSync(PIGZ);
if (hasPigz) methods.push({ name: 'pigz -p 2 -6 (pipe)', run: timePigz, samples: [], others: [], own: [] });
else progress(`${PIGZ} not found: no pigz row (apt-get install -y pigz)`);

progress(
  `${(data.length / 1e6).toFixed(0)} MB (half random, half text), ${RUNS} rounds, block ${BLOCK_SIZE / 1024} KiB, ` +
    `${availableParallelism()} cores, UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE ?? '(default 4)'}, load ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
);

// one untimed warm-up of each, then interleaved rounds (rotating who goes first)
for (const m of methods) m.outcome = await m.run(true);
let disturbed = 0;
let redone = 0;
for (let round = 0; round < RUNS; round++) {
  for (let i = 0; i < methods.length; i++) {
    const m = methods[(round + i) % methods.length] as Method;
    let outcome: Outcome;
    for (let attempt = 0; ; attempt++) {
      await waitForQuiet();
      outcome = await m.run(false);
      if (outcome.othersCores <= MAX_OTHERS) break;
      if (attempt >= RETRIES) {
        disturbed++;
        break;
      }
      redone++;
      progress(`${m.name}: ${outcome.ms.toFixed(0)} ms while others used ${outcome.othersCores.toFixed(2)} cores: again`);
    }
    m.samples.push(outcome.ms);
    m.others.push(outcome.othersCores);
    m.own.push(outcome.ownCores);
  }
  progress(`round ${round + 1}/${RUNS}: ${methods.map((m) => `${(m.samples.at(-1) as number).toFixed(0)} ms (others ${(m.others.at(-1) as number).toFixed(2)} cores)`).join(', ')}`);
}

// the two parallelGzip rows must have made the same bytes, and they must gunzip to the input
const p1 = methods[1]?.outcome as Outcome;
const pN = methods[2]?.outcome as Outcome;
if (p1.sha256 === undefined || p1.sha256 !== pN.sha256) throw new Error(`parallelGzip gave different bytes at concurrency 1 and ${CONCURRENCY}`);
{
  const out: Buffer[] = [];
  await pipeline(Readable.from(chunks), parallelGzip, new Writable({ write: (c: Buffer, _e, cb) => (out.push(c), cb()) }));
  if (!zlib.gunzipSync(Buffer.concat(out)).equals(data)) throw new Error('parallelGzip output does not gunzip to the input');
}

const mbps = (ms: number): number => data.length / 1e6 / (ms / 1000);
const single = summarize(methods[0]?.samples as number[]).median;
const rows = methods.map((m) => {
  const s = summarize(m.samples);
  const o = m.outcome as Outcome;
  return [
    m.name,
    s.median.toFixed(0),
    `${s.min.toFixed(0)}–${s.max.toFixed(0)}`,
    mbps(s.median).toFixed(1),
    (single / s.median).toFixed(2) + '×',
    (o.size / 1e6).toFixed(2),
    ((o.size / data.length) * 100).toFixed(2) + '%',
    summarize(m.own).median.toFixed(2),
    summarize(m.others).median.toFixed(2),
  ];
});
console.log(
  markdownTable(['method', 'median ms', 'min–max ms', 'MB/s', 'vs createGzip', 'output MB', 'ratio', 'our cores', "others' cores"], rows, [false, true, true, true, true, true, true, true, true]),
);
console.log(
  `(${RUNS * methods.length} timed runs; ${redone} redone because others used more than ${MAX_OTHERS} cores; ` +
    `${disturbed} kept although disturbed after ${RETRIES} retries; "our/others' cores" are medians)`,
);
const parallelMedian = summarize(methods[2]?.samples as number[]).median;
console.log(`bench:gzip: single_mbps=${mbps(single).toFixed(1)} parallel_mbps=${mbps(parallelMedian).toFixed(1)} speedup=${(single / parallelMedian).toFixed(2)}`);
