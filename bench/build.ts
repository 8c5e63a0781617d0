/**
 * `npm run bench` (node --import tsx bench/build.ts [options]): issue 6's harness. baler as a real
 * service, measured over HTTP like a CI job would use it, beside buildah doing the same builds.
 *
 *  1. Generates its inputs from a seed (bench/support/tree.ts): a busybox-static root plus a
 *     50 MiB / 1000-file tree (half random, half text-like) under a temp dir, and a tar of it.
 *  2. Starts `node --import tsx src/main.ts` (API + one worker + its private redis-server) with a
 *     fresh DATA_DIR on a free port of 127.0.0.1 and waits for /readyz and the worker.
 *  3. Timed rounds (a warm-up first, untimed), alternating who goes first:
 *     (a) scratch + the tree → docker-archive, uncompressed. baler: POST /v1/blobs (the tree tar),
 *         POST /v1/builds?noCache=true, GET /v1/builds/{id} every 10 ms until succeeded, GET
 *         …/image to a file: upload start → download end. buildah: from scratch, add the tar,
 *         commit docker-archive:, rm (fresh private storage per run, set up and removed untimed).
 *         The physical limit: `tar cf - DIR | sha256sum`.
 *     (b) FROM (a)'s archive (baler's, from the warm-up) + runAsRoot CHANGE_SCRIPT. baler: upload
 *         the archive, build with fromImage.blob, ?noCache=true, download; buildah: from
 *         docker-archive:, run, commit, rm. Both outputs checked for the change.
 *  4. Cache hit: the identical (a) spec without noCache, POST → succeeded (polled at once, then
 *     every 2 ms).
 *  5. Peak RSS of the API, worker and redis processes per phase (bench/support/rss.ts), and the
 *     store's bytes on disk after the builds.
 *  6. (--big, default on) a 2 GiB image: a streamed tar of random files, uploaded streamed,
 *     built, downloaded; the worker's peak RSS meanwhile.
 *  7. API throughput: autocannon GET /v1/builds/{id} (50 connections, 10 s) idle, with 1000 tiny
 *     builds queued and the worker paused (SIGSTOP), then while they drain; enqueue and drain times.
 *  8. A Markdown report on stdout and in bench/RESULTS.md; the last line is
 *     `bench: a=<ratio> b=<ratio> cache_hit_ms=<median> worker_rss_mb=<peak>`.
 *
 * Everything it starts or makes (service, redis, QEMU, buildah state, temp dirs) is removed on
 * every exit path, Ctrl-C included. Needs root (buildah runs runc rootful). Never part of `npm test`.
 */
import { createHash } from 'node:crypto';
import { createReadStream, readdirSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { harnessTmpBase, run } from '../test/support/run.ts';
import { checkChange, topLayerOf } from './support/archive.ts';
import { CHANGE_SCRIPT } from './support/baler.ts';
import {
  describeBuildahCommands,
  describeBuildahScratchCommands,
  ensureBuildah,
  withPrivateBuildah,
  timedBuildahBuild,
  timedBuildahScratchBuild,
  type PrivateBuildah,
} from './support/buildah.ts';
import { Cleanups } from './support/cleanup.ts';
import { autocannon, enqueueTinyBuilds, killCannons, mapLimit, type CannonResult } from './support/load.ts';
import { machineInfo, QemuWatcher, waitForQuiet, type Machine } from './support/machine.ts';
import { ForeignCpu } from './support/cpu.ts';
import { RssMonitor, type PhasePeaks, type Role } from './support/rss.ts';
import { buildSteps, fileSink, logProblems, redisPidOf, startBalerService, workerPidOf, type BalerService, type StepSegment } from './support/service.ts';
import { elapsedMs, fmtMs, fmtRatio, markdownTable, msBetween, summarize } from './support/stats.ts';
import { generateTree, writeBigTar, type BenchTree } from './support/tree.ts';

const here = dirname(fileURLToPath(import.meta.url));
const REPO = join(here, '..');
const RESULTS_FILE = join(here, 'RESULTS.md');

const { values: opts } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
    'cache-runs': { type: 'string', default: '10' },
    seed: { type: 'string', default: 'baler-bench-1' },
    'tree-mib': { type: 'string', default: '50' },
    'tree-files': { type: 'string', default: '1000' },
    'peer-input': { type: 'string', default: 'tar' },
    big: { type: 'boolean', default: false },
    'no-big': { type: 'boolean', default: false },
    'big-mib': { type: 'string', default: '2048' },
    'big-compression': { type: 'string', default: 'gzip' },
    'queue-builds': { type: 'string', default: '1000' },
    connections: { type: 'string', default: '50' },
    'cannon-seconds': { type: 'string', default: '10' },
    'quiet-wait': { type: 'string', default: '30' },
    'cpu-quiet-wait': { type: 'string', default: '10' },
    'cpu-quiet-cores': { type: 'string', default: '0.25' },
    'log-level': { type: 'string' },
    'save-log': { type: 'string' },
    'no-results-file': { type: 'boolean', default: false },
  },
  strict: true,
});

function positiveInt(name: string, raw: string | undefined, min = 1): number {
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < min) throw new Error(`--${name} must be an integer ≥ ${min}, got ${raw}`);
  return n;
}
const RUNS = positiveInt('runs', opts.runs);
const WARMUP = positiveInt('warmup', opts.warmup, 0);
const CACHE_RUNS = positiveInt('cache-runs', opts['cache-runs']);
const TREE_BYTES = positiveInt('tree-mib', opts['tree-mib']) * 1024 * 1024;
const TREE_FILES = positiveInt('tree-files', opts['tree-files'], 2);
const BIG = !opts['no-big']; // --big is the default; --no-big turns it off
const BIG_BYTES = positiveInt('big-mib', opts['big-mib']) * 1024 * 1024;
const BIG_COMPRESSION = opts['big-compression'] as string;
if (!['gzip', 'none'].includes(BIG_COMPRESSION)) throw new Error(`--big-compression must be gzip or none, got ${BIG_COMPRESSION}`);
const PEER_INPUT = opts['peer-input'] as string;
if (PEER_INPUT !== 'tar' && PEER_INPUT !== 'dir') throw new Error(`--peer-input must be tar (buildah add of the tar) or dir (buildah copy of the tree), got ${PEER_INPUT}`);
const QUEUE_BUILDS = positiveInt('queue-builds', opts['queue-builds']);
const CONNECTIONS = positiveInt('connections', opts.connections);
const CANNON_S = positiveInt('cannon-seconds', opts['cannon-seconds']);
const QUIET_WAIT_S = Number(opts['quiet-wait']);
if (!(QUIET_WAIT_S >= 0)) throw new Error(`--quiet-wait must be a number of seconds, got ${opts['quiet-wait']}`);
const CPU_WAIT_S = Number(opts['cpu-quiet-wait']);
if (!(CPU_WAIT_S >= 0)) throw new Error(`--cpu-quiet-wait must be a number of seconds, got ${opts['cpu-quiet-wait']}`);
const CPU_QUIET_CORES = Number(opts['cpu-quiet-cores']);
if (!(CPU_QUIET_CORES >= 0)) throw new Error(`--cpu-quiet-cores must be a number, got ${opts['cpu-quiet-cores']}`);
const SEED = opts.seed as string;
const COMMAND = ['node --import tsx bench/build.ts', ...process.argv.slice(2)].join(' ');
const NPM_COMMAND = process.argv.length > 2 ? `npm run bench -- ${process.argv.slice(2).join(' ')}` : 'npm run bench';

const POLL_MS = 10;
const CACHE_POLL_MS = 2;
const MiB = 1024 * 1024;

function progress(text: string): void {
  process.stderr.write(`bench: ${text}\n`);
}

// ---------------------------------------------------------------------------
// cleanup on every exit path

const cleanups = new Cleanups(progress, killCannons);
const withCleanup = <T>(cleanup: () => Promise<void>, body: () => Promise<T>): Promise<T> => cleanups.with(cleanup, body);
const checkInterrupted = (): void => cleanups.checkInterrupted();

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------
// talking to baler

interface BuildView {
  id: string;
  status: string;
  /** Set on a build-cache hit: the build whose result was reused (`cached` in the issue's words). */
  cachedFrom?: string;
  cached?: boolean;
  createdAt?: string;
  startedAt?: string;
  finishedAt?: string;
  error?: { detail?: string; title?: string };
  result?: { imageId: string; archive: { digest: string; size: number; mediaType: string } };
}

const FINAL = new Set(['succeeded', 'failed', 'cancelled']);

function isCached(b: BuildView): boolean {
  return Boolean(b.cachedFrom || b.cached);
}

class Baler {
  succeeded = 0;

  constructor(readonly svc: BalerService) {}

  get client() {
    return this.svc.client;
  }

  async upload(path: string, expectDigest?: string): Promise<{ digest: string; size: number; status: number }> {
    const res = await this.client.request('POST', '/v1/blobs', { body: createReadStream(path), headers: { 'content-type': 'application/octet-stream' } });
    if (res.status !== 201 && res.status !== 200) throw new Error(`upload of ${path}: ${res.status} ${res.body.toString('utf8').slice(0, 500)}`);
    const body = JSON.parse(res.body.toString('utf8')) as { digest: string; size: number };
    if (expectDigest && body.digest !== expectDigest) throw new Error(`upload of ${path}: server says ${body.digest}, expected ${expectDigest}`);
    return { ...body, status: res.status };
  }

  async submit(spec: unknown, noCache: boolean): Promise<BuildView> {
    const query = noCache ? '?noCache=true' : '';
    const r = await this.client.json<BuildView>('POST', `/v1/builds${query}`, spec);
    if (r.status < 200 || r.status >= 300) throw new Error(`POST /v1/builds${query}: ${r.status} ${r.text.slice(0, 1000)}`);
    return r.body;
  }

  async get(id: string): Promise<BuildView> {
    const r = await this.client.json<BuildView>('GET', `/v1/builds/${id}`);
    if (r.status !== 200) throw new Error(`GET /v1/builds/${id}: ${r.status} ${r.text.slice(0, 500)}`);
    return r.body;
  }

  /** Polls every `intervalMs` (the first poll at once) until the build is final; throws unless it succeeded. */
  async waitSucceeded(id: string, intervalMs: number, timeoutMs: number): Promise<BuildView> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const b = await this.get(id);
      if (FINAL.has(b.status)) {
        if (b.status !== 'succeeded') throw new Error(`build ${id} ${b.status}: ${b.error?.detail ?? JSON.stringify(b.error)}\n--- service log (tail)\n${await this.svc.logTail()}`);
        this.succeeded++;
        return b;
      }
      if (Date.now() > deadline) throw new Error(`build ${id} still ${b.status} after ${timeoutMs} ms`);
      checkInterrupted();
      await sleep(intervalMs);
    }
  }

  async download(id: string, sink: Writable): Promise<{ bytes: number; contentLength: number }> {
    const res = await this.client.download(`/v1/builds/${id}/image`, sink);
    if (res.status !== 200) throw new Error(`GET /v1/builds/${id}/image: ${res.status} ${res.body.toString('utf8').slice(0, 500)}`);
    return { bytes: res.bytes, contentLength: Number(res.headers['content-length'] ?? -1) };
  }
}

/** A Writable that only hashes and counts (for the large download). */
function hashingSink(): { sink: Writable; digest: () => string } {
  const hash = createHash('sha256');
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      done();
    },
  });
  return { sink, digest: () => `sha256:${hash.digest('hex')}` };
}

async function sha256Of(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}

function serverMs(b: BuildView): { queued: number; running: number } {
  const t = (s: string | undefined): number => (s ? Date.parse(s) : NaN);
  return { queued: t(b.startedAt) - t(b.createdAt), running: t(b.finishedAt) - t(b.startedAt) };
}

// ---------------------------------------------------------------------------
// the store on disk

interface StoreUsage {
  label: string;
  builds: number;
  /** Everything under DATA_DIR except redis/ (the queue's AOF). */
  bytes: number;
  blobsBytes: number;
  blobCount: number;
  breakdown: string;
}

async function duBytes(path: string): Promise<number> {
  const r = await run('du', ['-sb', path], { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`du -sb ${path}: ${r.stderr}`);
  return Number(r.stdout.split(/\s/)[0]);
}

async function storeUsage(dataDir: string, label: string, builds: number): Promise<StoreUsage> {
  let bytes = 0;
  const parts: string[] = [];
  for (const entry of readdirSync(dataDir).sort()) {
    if (entry === 'redis') continue;
    const b = await duBytes(join(dataDir, entry));
    bytes += b;
    parts.push(`${entry}/ ${(b / MiB).toFixed(1)} MiB`);
  }
  let blobCount = 0;
  let blobsBytes = 0;
  try {
    blobCount = readdirSync(join(dataDir, 'blobs', 'sha256')).length;
    blobsBytes = await duBytes(join(dataDir, 'blobs'));
  } catch {
    /* another layout */
  }
  return { label, builds, bytes, blobsBytes, blobCount, breakdown: parts.join(', ') };
}

async function storeBytes(dataDir: string): Promise<number> {
  let bytes = 0;
  for (const entry of readdirSync(dataDir)) if (entry !== 'redis') bytes += await duBytes(join(dataDir, entry));
  return bytes;
}

// ---------------------------------------------------------------------------
// the measurements

interface Samples {
  aBaler: number[];
  aUpload: number[];
  aSubmitToDone: number[];
  aQueued: number[];
  aRunning: number[];
  aDownload: number[];
  aStoreGrowth: number[];
  aBuildah: number[];
  aBuildahFrom: number[];
  aBuildahAdd: number[];
  aBuildahCommit: number[];
  aBuildahRm: number[];
  aLimit: number[];
  bBaler: number[];
  bUpload: number[];
  bSubmitToDone: number[];
  bQueued: number[];
  bRunning: number[];
  bDownload: number[];
  bStoreGrowth: number[];
  bBuildah: number[];
  bBuildahFrom: number[];
  bBuildahRun: number[];
  bBuildahCommit: number[];
  bBuildahRm: number[];
  cacheHit: number[];
  cachePost: number[];
}

function newSamples(): Samples {
  const s = {} as Record<keyof Samples, number[]>;
  for (const k of [
    'aBaler', 'aUpload', 'aSubmitToDone', 'aQueued', 'aRunning', 'aDownload', 'aStoreGrowth', 'aBuildah', 'aBuildahFrom', 'aBuildahAdd',
    'aBuildahCommit', 'aBuildahRm', 'aLimit', 'bBaler', 'bUpload', 'bSubmitToDone', 'bQueued', 'bRunning', 'bDownload', 'bStoreGrowth',
    'bBuildah', 'bBuildahFrom', 'bBuildahRun', 'bBuildahCommit', 'bBuildahRm', 'cacheHit', 'cachePost',
  ] as (keyof Samples)[]) s[k] = [];
  return s as Samples;
}

interface BigResult {
  tarBytes: number;
  files: number;
  genMs: number;
  uploadMs: number;
  buildMs: number;
  serverRunningMs: number;
  downloadMs: number;
  archiveBytes: number;
  compression: string;
  peaks: PhasePeaks | undefined;
  /** Others' CPU use (cores) over the phase. */
  foreign: number;
}

interface ApiResult {
  idle: CannonResult;
  /** With the builds queued and the worker paused. */
  queued: CannonResult;
  drain: CannonResult;
  /** Others' CPU use (cores) during each autocannon run. */
  idleForeign: number;
  queuedForeign: number;
  drainForeign: number;
  enqueueMs: number;
  retried429: number;
  drainMs: number;
  finishedDuringCannon: number;
  finishedBeforeCannon: number;
  failed: number;
  builds: number;
}

interface Notes {
  tree: BenchTree;
  treeGenMs: number;
  aArchiveBytes: number;
  aArchiveDigests: Set<string>;
  bArchiveBytes: number;
  buildahAArchiveBytes: number;
  aChecks: string;
  cachedMarked: number;
  /** Cache-hit submissions whose POST answer already said succeeded. */
  cacheAnsweredSucceeded: number;
  noCacheServedCached: number;
  disturbedRounds: number;
  /** Timed sides that started although others used more than CPU_QUIET_CORES. */
  cpuNotQuiet: number;
  /** Others' CPU use (cores) during each timed side, by side. */
  foreign: Record<string, number[]>;
  loadBefore: string;
  loadAfter: string;
  accel: string;
  logSummary: string;
  workerPids: number[];
  commit: string;
  /** The worker's step timings of the timed (a) and (b) builds, from its log. */
  steps: { a: StepSegment[][]; b: StepSegment[][] };
}

async function countTreeFiles(archivePath: string, prefix: string): Promise<{ files: number; bytes: number }> {
  const layer = await topLayerOf(archivePath);
  let files = 0;
  let bytes = 0;
  for (const [name, e] of layer) {
    if (name.startsWith(`${prefix}/`) && e.type === 'file') {
      files++;
      bytes += e.data.length;
    }
  }
  return { files, bytes };
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench needs root (buildah runs runc rootful, as in the tests)');
  // What `npm start` installs first (Debian packages, the VM's kernel and initramfs); idempotent.
  progress('setup: node scripts/setup.mjs runtime');
  const setup = await run(process.execPath, [join(REPO, 'scripts/setup.mjs'), 'runtime'], { timeoutMs: 1_800_000, cwd: REPO });
  if (setup.code !== 0) throw new Error(`scripts/setup.mjs runtime failed:\n${setup.stdout}\n${setup.stderr}`);
  const buildahVersion = await ensureBuildah();
  const machine = await machineInfo(buildahVersion);
  const commit = await gitDescribe();

  const tmpBase = harnessTmpBase();
  const work = await mkdtemp(join(tmpBase, 'bench-build-'));
  await withCleanup(
    () => rm(work, { recursive: true, force: true }),
    async () => {
      const { tree, treeGenMs } = await generateInputs(work);
      progress('starting baler (node --import tsx src/main.ts, private redis-server)');
      const svcEnv: Record<string, string> = {};
      if (opts['log-level']) svcEnv.LOG_LEVEL = opts['log-level'];
      let svcRef: BalerService | undefined;
      await withCleanup(
        async () => {
          await svcRef?.stop(cleanups.interrupted ? 3000 : 15_000);
        },
        async () => {
          const svc = await startBalerService(work, svcEnv);
          svcRef = svc;
          const bench = await startMeasuring(svc, { work, tmpBase, tree, notes: { tree, treeGenMs, commit } });
          await runRounds(bench);
          await runCacheHits(bench);
          const api = await runApiThroughput(bench);
          const big = BIG ? await runBigImage(bench) : undefined;
          await finish(bench, machine, api, big);
        },
      );
    },
  );
}

/** What every case of a bench run shares: the service, the monitors, and what is recorded. */
interface Bench {
  svc: BalerService;
  baler: Baler;
  work: string;
  tmpBase: string;
  tree: BenchTree;
  monitor: RssMonitor;
  watcher: QemuWatcher;
  cpu: ForeignCpu;
  s: Samples;
  stores: StoreUsage[];
  notes: Partial<Notes>;
  /** (a)'s spec; its archive from the first round is (b)'s base. */
  specA: unknown;
  baseArchive: string;
  outDir: string;
  lastABuild: string;
  timedIds: { a: string[]; b: string[] };
  noCacheServedCached: number;
}

/** 1. The inputs: the tree and its tar, from the seed string. */
async function generateInputs(work: string): Promise<{ tree: BenchTree; treeGenMs: number }> {
  progress(`generating the tree (seed '${SEED}', ${TREE_FILES} files, ${TREE_BYTES / MiB} MiB) under ${work}`);
  const tGen = process.hrtime.bigint();
  const tree = await generateTree(join(work, 'gen'), { seed: SEED, files: TREE_FILES, bytes: TREE_BYTES });
  const treeGenMs = elapsedMs(tGen);
  progress(`tree: ${tree.files} files + busybox root (${tree.applets} applets), tar ${tree.tarBytes} bytes ${tree.tarDigest} (${fmtMs(treeGenMs)} ms)`);
  checkInterrupted();
  return { tree, treeGenMs };
}

/** 2. Once the service answers: a worker proven ready by a build, and the monitors started. */
async function startMeasuring(svc: BalerService, given: { work: string; tmpBase: string; tree: BenchTree; notes: Partial<Notes> }): Promise<Bench> {
  progress(`baler up at ${svc.url} (api pid ${svc.apiPid}), DATA_DIR ${svc.dataDir}`);
  const baler = new Baler(svc);
  // The worker is ready when it has built something: one tiny build first (untimed).
  const probe = await baler.submit({ name: 'bench-probe', contents: [{ text: 'probe\n', to: '/probe' }], compression: 'none' }, false);
  await baler.waitSucceeded(probe.id, 50, 300_000);
  const monitor = new RssMonitor(svc.apiPid);
  monitor.start(50);
  const watcher = new QemuWatcher();
  watcher.start();
  const outDir = join(given.work, 'out');
  await mkdir(outDir, { recursive: true });
  return {
    svc,
    baler,
    work: given.work,
    tmpBase: given.tmpBase,
    tree: given.tree,
    monitor,
    watcher,
    cpu: new ForeignCpu(() => [svc.apiPid, workerPidOf(svc.apiPid), redisPidOf(svc.apiPid)]),
    s: newSamples(),
    stores: [],
    notes: { ...given.notes, loadBefore: loadavg().map((l) => l.toFixed(2)).join(' '), aArchiveDigests: new Set() },
    specA: { name: 'bench-a', contents: [{ tar: given.tree.tarDigest, to: '/' }], format: 'docker-archive', compression: 'none' },
    baseArchive: join(given.work, 'base-a.tar'),
    outDir,
    lastABuild: '',
    timedIds: { a: [], b: [] },
    noCacheServedCached: 0,
  };
}

/** One round of the (a)/(b) cases: its label, whether it is timed, and what the rounds count. */
interface Round {
  index: number;
  label: string;
  timed: boolean;
  counts: { cpuNotQuiet: number; foreign: Record<string, number[]> };
}

/** 3. (a) and (b), a warm-up first, alternating who goes first. */
async function runRounds(b: Bench): Promise<void> {
  b.monitor.phase('(a)/(b) rounds');
  let disturbedRounds = 0;
  const counts: Round['counts'] = { cpuNotQuiet: 0, foreign: {} };
  const total = WARMUP + RUNS;
  for (let index = 0; index < total; index++) {
    const timed = index >= WARMUP;
    const round: Round = { index, timed, counts, label: timed ? `run ${index - WARMUP + 1}/${RUNS}` : `warm-up ${index + 1}/${WARMUP}` };
    const foreignBefore = b.watcher.foreign.size;
    // Alternate who goes first, so slow drift of the machine favours neither side.
    const balerFirst = index % 2 === 0;
    const parts: string[] = [];
    const a: [string, () => Promise<string>][] = [
      ['(a) baler', () => balerA(b, round)],
      ['(a) buildah', () => buildahA(b, round)],
    ];
    const bb: [string, () => Promise<string>][] = [
      ['(b) baler', () => balerB(b, round)],
      ['(b) buildah', () => buildahB(b, round)],
    ];
    for (const [name, fn] of balerFirst ? a : a.reverse()) parts.push(await side(b, round, name, fn));
    parts.push(await side(b, round, '(a) limit', () => limitA(b, round)));
    for (const [name, fn] of balerFirst ? bb : bb.reverse()) parts.push(await side(b, round, name, fn));
    const disturbed = b.watcher.foreign.size > foreignBefore;
    if (disturbed && timed) disturbedRounds++;
    progress(`${round.label}: ${parts.join('; ')}${disturbed ? ' [another QEMU ran meanwhile]' : ''}`);
  }
  b.notes.disturbedRounds = disturbedRounds;
  b.notes.cpuNotQuiet = counts.cpuNotQuiet;
  b.notes.foreign = counts.foreign;
  b.notes.noCacheServedCached = b.noCacheServedCached;
  b.stores.push(await storeUsage(b.svc.dataDir, 'after the (a)/(b) rounds', b.baler.succeeded));
}

/** Waits (within limits) for other QEMU processes to end and others' CPU use to drop. */
async function quiet(b: Bench, round: Round): Promise<void> {
  if (QUIET_WAIT_S > 0) {
    const waited = await waitForQuiet(QUIET_WAIT_S * 1000);
    if (waited < 0) progress(`${round.label}: other QEMU processes still running after ${QUIET_WAIT_S} s; going on`);
    else if (waited >= 250) progress(`${round.label}: waited ${(waited / 1000).toFixed(1)} s for other QEMU processes to end`);
  }
  if (CPU_WAIT_S > 0) {
    const q = await b.cpu.waitForQuiet(CPU_WAIT_S * 1000, CPU_QUIET_CORES);
    if (q.waitedMs < 0) {
      if (round.timed) round.counts.cpuNotQuiet++;
      progress(`${round.label}: others still used ${q.cores.toFixed(2)} cores after ${CPU_WAIT_S} s; going on`);
    } else if (q.waitedMs >= 1000) progress(`${round.label}: waited ${(q.waitedMs / 1000).toFixed(1)} s for others' CPU use to drop`);
  }
}

/** One side: wait for a quiet machine, run it, note how much CPU others took meanwhile. */
async function side(b: Bench, round: Round, name: string, fn: () => Promise<string>): Promise<string> {
  await quiet(b, round);
  const mark = b.cpu.mark();
  const text = await fn();
  const cores = b.cpu.foreignCores(mark);
  if (round.timed) (round.counts.foreign[name] ??= []).push(cores);
  return `${text}${cores >= 0.1 ? ` [others: ${cores.toFixed(2)} cores]` : ''}`;
}

/**
 * One timed baler round of (a) or (b): upload, submit with noCache, poll, download; then the
 * untimed checks (length, digest, not served from the cache) and `check`.
 */
async function balerRound(
  b: Bench,
  round: Round,
  which: 'a' | 'b',
  input: { path: string; digest?: string },
  /** The spec, given the uploaded blob's digest. */
  spec: (digest: string) => unknown,
  check: (out: string, digest: string, id: string) => Promise<void>,
): Promise<string> {
  checkInterrupted();
  const { baler, svc, s } = b;
  const out = join(b.outDir, `baler-${which}.tar`);
  const before = round.timed ? await storeBytes(svc.dataDir) : 0;
  const t0 = process.hrtime.bigint();
  const uploaded = await baler.upload(input.path, input.digest);
  const t1 = process.hrtime.bigint();
  const sub = await baler.submit(spec(uploaded.digest), true);
  const done = await baler.waitSucceeded(sub.id, POLL_MS, 600_000);
  const t2 = process.hrtime.bigint();
  const dl = await baler.download(sub.id, fileSink(out));
  const t3 = process.hrtime.bigint();
  // untimed checks
  if (dl.bytes !== done.result?.archive.size || dl.contentLength !== dl.bytes) throw new Error(`(${which}) download: ${dl.bytes} bytes, Content-Length ${dl.contentLength}, archive ${done.result?.archive.size}`);
  const digest = await sha256Of(out);
  if (digest !== done.result?.archive.digest) throw new Error(`(${which}) download digest ${digest} ≠ the build's archive ${done.result?.archive.digest}`);
  if (isCached(done)) b.noCacheServedCached++;
  await check(out, digest, sub.id);
  const sm = serverMs(done);
  if (round.timed) {
    const samples =
      which === 'a'
        ? { total: s.aBaler, upload: s.aUpload, build: s.aSubmitToDone, download: s.aDownload, queued: s.aQueued, running: s.aRunning, growth: s.aStoreGrowth }
        : { total: s.bBaler, upload: s.bUpload, build: s.bSubmitToDone, download: s.bDownload, queued: s.bQueued, running: s.bRunning, growth: s.bStoreGrowth };
    b.timedIds[which].push(sub.id);
    samples.total.push(msBetween(t0, t3));
    samples.upload.push(msBetween(t0, t1));
    samples.build.push(msBetween(t1, t2));
    samples.download.push(msBetween(t2, t3));
    samples.queued.push(sm.queued);
    samples.running.push(sm.running);
    samples.growth.push((await storeBytes(svc.dataDir)) - before);
  }
  await rm(out, { force: true });
  return `baler (${which}) ${fmtMs(msBetween(t0, t3))} ms (upload ${fmtMs(msBetween(t0, t1))}, build ${fmtMs(msBetween(t1, t2))} [server: queued ${sm.queued}, running ${sm.running}], download ${fmtMs(msBetween(t2, t3))})${isCached(done) ? ' [CACHED despite noCache]' : ''}`;
}

/** (a) on baler: scratch + the tree; the first round's archive is kept as (b)'s base. */
function balerA(b: Bench, round: Round): Promise<string> {
  const { tree, notes } = b;
  return balerRound(b, round, 'a', { path: tree.tar, digest: tree.tarDigest }, () => b.specA, async (out, digest, id) => {
    b.lastABuild = id;
    notes.aArchiveBytes = (await stat(out)).size;
    notes.aArchiveDigests?.add(digest);
    if (round.index === 0) {
      await copyFile(out, b.baseArchive);
      const c = await countTreeFiles(out, tree.treePrefix);
      if (c.files !== tree.files || c.bytes !== tree.bytes) throw new Error(`baler (a): the layer has ${c.files} tree files / ${c.bytes} bytes, expected ${tree.files} / ${tree.bytes}`);
      notes.aChecks = `baler: ${c.files} files / ${c.bytes} bytes under /${tree.treePrefix}`;
    }
  });
}

/** (a) on buildah: from scratch, add the tar (or copy the tree), commit, rm. */
async function buildahA(b: Bench, round: Round): Promise<string> {
  const { tree, notes, s } = b;
  const r = await withPrivateBuildah(cleanups, b.tmpBase, async (bh) => {
    const out = join(bh.root, 'out-a.tar');
    const res = await timedBuildahScratchBuild(bh, PEER_INPUT === 'tar' ? { tar: tree.tar } : { dir: tree.root }, out);
    if (round.index === 0) {
      const c = await countTreeFiles(out, tree.treePrefix);
      if (c.files !== tree.files || c.bytes !== tree.bytes) throw new Error(`buildah (a): the layer has ${c.files} tree files / ${c.bytes} bytes, expected ${tree.files} / ${tree.bytes}`);
      notes.aChecks += `; buildah: ${c.files} files / ${c.bytes} bytes`;
      notes.buildahAArchiveBytes = (await stat(out)).size;
    }
    return res;
  });
  if (round.timed) {
    s.aBuildah.push(r.ms);
    s.aBuildahFrom.push(r.phases.from);
    s.aBuildahAdd.push(r.phases.add);
    s.aBuildahCommit.push(r.phases.commit);
    s.aBuildahRm.push(r.phases.rm);
  }
  const p = r.phases;
  return `buildah (a) ${fmtMs(r.ms)} ms (from ${fmtMs(p.from)}, ${PEER_INPUT === 'tar' ? 'add' : 'copy'} ${fmtMs(p.add)}, commit ${fmtMs(p.commit)}, rm ${fmtMs(p.rm)})`;
}

/** (a)'s physical limit: `tar cf - DIR | sha256sum`. */
async function limitA(b: Bench, round: Round): Promise<string> {
  const t0 = process.hrtime.bigint();
  const r = await run('bash', ['-o', 'pipefail', '-c', 'tar -C "$1" -cf - . | sha256sum', 'limit', b.tree.root], { timeoutMs: 300_000 });
  const ms = elapsedMs(t0);
  if (r.code !== 0) throw new Error(`tar | sha256sum failed: ${r.stderr}`);
  if (round.timed) b.s.aLimit.push(ms);
  return `limit ${fmtMs(ms)} ms`;
}

/** (b) on baler: FROM (a)'s archive + runAsRoot CHANGE_SCRIPT. */
function balerB(b: Bench, round: Round): Promise<string> {
  const specB = (blob: string) => ({ name: 'bench-b', fromImage: { blob }, runAsRoot: CHANGE_SCRIPT, format: 'docker-archive', compression: 'none' });
  return balerRound(b, round, 'b', { path: b.baseArchive }, specB, async (out) => {
    await checkChange(out, 'baler (b)');
    b.notes.bArchiveBytes = (await stat(out)).size;
  });
}

/** (b) on buildah: from docker-archive:, run CHANGE_SCRIPT, commit, rm. */
async function buildahB(b: Bench, round: Round): Promise<string> {
  const { s } = b;
  const r = await withPrivateBuildah(cleanups, b.tmpBase, async (bh) => {
    const res = await timedBuildahBuild(bh, b.baseArchive, CHANGE_SCRIPT, join(bh.root, 'out-b.tar'));
    await checkChange(res.archivePath, 'buildah (b)');
    return res;
  });
  if (round.timed) {
    s.bBuildah.push(r.ms);
    s.bBuildahFrom.push(r.phases.from);
    s.bBuildahRun.push(r.phases.run);
    s.bBuildahCommit.push(r.phases.commit);
    s.bBuildahRm.push(r.phases.rm);
  }
  const p = r.phases;
  return `buildah (b) ${fmtMs(r.ms)} ms (from ${fmtMs(p.from)}, run ${fmtMs(p.run)}, commit ${fmtMs(p.commit)}, rm ${fmtMs(p.rm)})`;
}

/** 4. Cache hit: the (a) spec again without noCache, after one priming submission. */
async function runCacheHits(b: Bench): Promise<void> {
  const { baler, s, notes } = b;
  b.monitor.phase('cache hit');
  progress(`cache hit: the (a) spec again without noCache, ${CACHE_RUNS} times (one priming submission first)`);
  const prime = await baler.submit(b.specA, false);
  await baler.waitSucceeded(prime.id, POLL_MS, 600_000);
  let cachedMarked = 0;
  let answeredSucceeded = 0;
  for (let i = 0; i < CACHE_RUNS; i++) {
    checkInterrupted();
    const t0 = process.hrtime.bigint();
    const sub = await baler.submit(b.specA, false);
    s.cachePost.push(elapsedMs(t0));
    if (sub.status === 'succeeded') {
      answeredSucceeded++;
      baler.succeeded++;
    } else await baler.waitSucceeded(sub.id, CACHE_POLL_MS, 600_000);
    s.cacheHit.push(elapsedMs(t0));
    if (isCached(await baler.get(sub.id))) cachedMarked++;
  }
  notes.cacheAnsweredSucceeded = answeredSucceeded;
  notes.cachedMarked = cachedMarked;
  progress(`cache hit: median ${summarize(s.cacheHit).median.toFixed(1)} ms; ${cachedMarked} of ${CACHE_RUNS} marked cached`);
  b.stores.push(await storeUsage(b.svc.dataDir, 'after the cache hits', baler.succeeded));
}

/** Waits (within limits) for a quiet machine before an API or big-image measurement. */
async function quietApi(b: Bench, what: string): Promise<void> {
  if (QUIET_WAIT_S > 0 && (await waitForQuiet(QUIET_WAIT_S * 1000)) < 0) progress(`${what}: other QEMU processes still running after ${QUIET_WAIT_S} s; going on`);
  if (CPU_WAIT_S > 0) {
    const q = await b.cpu.waitForQuiet(CPU_WAIT_S * 1000, CPU_QUIET_CORES);
    if (q.waitedMs < 0) progress(`${what}: others still used ${q.cores.toFixed(2)} cores after ${CPU_WAIT_S} s; going on`);
  }
}

/** 7. API throughput: autocannon idle, with the tiny builds queued (worker paused), and while they drain. */
async function runApiThroughput(b: Bench): Promise<ApiResult> {
  const { svc, baler, cpu, monitor } = b;
  monitor.phase('API idle (autocannon)');
  const getUrl = `${svc.url}/v1/builds/${b.lastABuild}`;
  progress(`autocannon GET /v1/builds/{id}, ${CONNECTIONS} connections, ${CANNON_S} s, idle`);
  await quietApi(b, 'API idle');
  let mark = cpu.mark();
  const idle = await autocannon(getUrl, { connections: CONNECTIONS, durationS: CANNON_S });
  const idleForeign = cpu.foreignCores(mark);
  progress(`idle: ${idle.reqPerSec.toFixed(0)} req/s, p99 ${idle.p99} ms, non-2xx ${idle.non2xx}, errors ${idle.errors} [others: ${idleForeign.toFixed(2)} cores]`);
  checkInterrupted();

  monitor.phase(`${QUEUE_BUILDS} builds draining`);
  await quietApi(b, 'queue drain');
  // First with the worker stopped (SIGSTOP): 1000 builds queued and nobody taking them
  // shows what the queue's size does to the API, apart from sharing 2 cores with a
  // worker that is building.
  const workerPid = workerPidOf(svc.apiPid);
  if (workerPid === undefined) throw new Error('no worker process to pause');
  process.kill(workerPid, 'SIGSTOP');
  let enq;
  let queued: CannonResult;
  let queuedForeign: number;
  try {
    progress(`enqueueing ${QUEUE_BUILDS} tiny builds (worker paused)`);
    enq = await enqueueTinyBuilds(baler.client, QUEUE_BUILDS, 16, `q${process.pid}`);
    progress(`enqueued in ${fmtMs(enq.ms)} ms (${enq.retried429} answers 429, retried); autocannon while they wait`);
    mark = cpu.mark();
    queued = await autocannon(getUrl, { connections: CONNECTIONS, durationS: CANNON_S });
    queuedForeign = cpu.foreignCores(mark);
    progress(`while queued: ${queued.reqPerSec.toFixed(0)} req/s, p99 ${queued.p99} ms [others: ${queuedForeign.toFixed(2)} cores]`);
  } finally {
    process.kill(workerPid, 'SIGCONT');
  }
  progress('worker resumed; autocannon while they drain');
  const drainT0 = Date.now();
  const cannonStart = drainT0;
  mark = cpu.mark();
  const drain = await autocannon(getUrl, { connections: CONNECTIONS, durationS: CANNON_S });
  const drainForeign = cpu.foreignCores(mark);
  const cannonEnd = Date.now();
  progress(`during drain: ${drain.reqPerSec.toFixed(0)} req/s, p99 ${drain.p99} ms, non-2xx ${drain.non2xx}, errors ${drain.errors} [others: ${drainForeign.toFixed(2)} cores]`);
  const views = await waitDrained(baler, enq.ids);
  const finishedAt = views.map((v) => Date.parse(v.finishedAt ?? ''));
  const api: ApiResult = {
    idle,
    queued,
    drain,
    idleForeign,
    queuedForeign,
    drainForeign,
    enqueueMs: enq.ms,
    retried429: enq.retried429,
    drainMs: Math.max(...finishedAt) - drainT0,
    finishedBeforeCannon: finishedAt.filter((t) => t < cannonStart).length,
    finishedDuringCannon: finishedAt.filter((t) => t >= cannonStart && t <= cannonEnd).length,
    failed: views.filter((v) => v.status !== 'succeeded').length,
    builds: QUEUE_BUILDS,
  };
  baler.succeeded += views.filter((v) => v.status === 'succeeded').length;
  progress(`drained ${QUEUE_BUILDS} builds in ${fmtMs(api.drainMs)} ms (${api.failed} not succeeded; ${api.finishedDuringCannon} finished during the measurement)`);
  b.stores.push(await storeUsage(svc.dataDir, `after ${QUEUE_BUILDS} tiny builds`, baler.succeeded));
  return api;
}

/** The queued builds once all are final (the last one first, then all of them). */
async function waitDrained(baler: Baler, ids: string[]): Promise<BuildView[]> {
  const lastId = ids[ids.length - 1] as string;
  const drainDeadline = Date.now() + 30 * 60_000;
  for (;;) {
    checkInterrupted();
    const last = await baler.get(lastId);
    if (FINAL.has(last.status)) {
      const views = await mapLimit(ids, 16, (id) => baler.get(id));
      if (views.every((v) => FINAL.has(v.status))) return views;
    }
    if (Date.now() > drainDeadline) throw new Error(`${QUEUE_BUILDS} tiny builds not drained in 30 min`);
    await sleep(250);
  }
}

/** 6. The big image: a streamed tar of random files, uploaded, built, downloaded. */
async function runBigImage(b: Bench): Promise<BigResult> {
  const { baler, cpu, monitor } = b;
  await quietApi(b, 'big image');
  monitor.phase(`${BIG_BYTES / MiB} MiB image`);
  const bigMark = cpu.mark();
  const bigTar = join(b.work, 'big.tar');
  progress(`big: writing a ${BIG_BYTES / MiB} MiB tar of random files (streamed)`);
  const tg = process.hrtime.bigint();
  const made = await writeBigTar(bigTar, { seed: SEED, totalBytes: BIG_BYTES, fileBytes: 4 * MiB });
  const genMs = elapsedMs(tg);
  checkInterrupted();
  progress(`big: ${made.size} bytes, ${made.files} files in ${fmtMs(genMs)} ms; uploading`);
  const tu = process.hrtime.bigint();
  await baler.upload(bigTar, made.digest);
  const uploadMs = elapsedMs(tu);
  await rm(bigTar, { force: true });
  progress(`big: uploaded in ${fmtMs(uploadMs)} ms; building (${BIG_COMPRESSION})`);
  const tb = process.hrtime.bigint();
  const sub = await baler.submit({ name: 'bench-big', contents: [{ tar: made.digest, to: '/' }], format: 'docker-archive', compression: BIG_COMPRESSION, timeout: 3600 }, true);
  const done = await baler.waitSucceeded(sub.id, 100, 3_600_000);
  const buildMs = elapsedMs(tb);
  progress(`big: built in ${fmtMs(buildMs)} ms; downloading`);
  const td = process.hrtime.bigint();
  const h = hashingSink();
  const dl = await baler.download(sub.id, h.sink);
  const downloadMs = elapsedMs(td);
  if (dl.bytes !== done.result?.archive.size || h.digest() !== done.result?.archive.digest) throw new Error(`big download: ${dl.bytes} bytes ${h.digest()}, archive ${done.result?.archive.size} ${done.result?.archive.digest}`);
  const peaks = monitor.endPhase();
  const big: BigResult = {
    tarBytes: made.size,
    files: made.files,
    genMs,
    uploadMs,
    buildMs,
    serverRunningMs: serverMs(done).running,
    downloadMs,
    archiveBytes: dl.bytes,
    compression: BIG_COMPRESSION,
    peaks,
    foreign: cpu.foreignCores(bigMark),
  };
  progress(`big: downloaded ${dl.bytes} bytes in ${fmtMs(downloadMs)} ms; worker peak ${mib(peaks?.peak.worker)} MiB`);
  b.stores.push(await storeUsage(b.svc.dataDir, `after the ${BIG_BYTES / MiB} MiB image`, baler.succeeded));
  return big;
}

/** 8. Monitors stopped, the service stopped and its log read, the report written. */
async function finish(b: Bench, machine: Machine, api: ApiResult, big: BigResult | undefined): Promise<void> {
  const { svc, monitor, watcher, notes } = b;
  monitor.stop();
  watcher.stop();
  notes.loadAfter = loadavg().map((l) => l.toFixed(2)).join(' ');
  notes.accel = watcher.accels.size > 0 ? [...watcher.accels].sort().join(', ') : 'unknown (no QEMU seen)';
  notes.workerPids = monitor.workerPids;
  const problems = await logProblems(svc.logPath);
  notes.logSummary =
    `${problems.error} error and ${problems.warn} warning records` +
    (problems.messages.size > 0 ? `: ${[...problems.messages].map(([m, n]) => `${m} ×${n}`).join('; ')}` : '');
  notes.noCacheServedCached = b.noCacheServedCached;
  await svc.stop();
  const steps = await buildSteps(svc.logPath);
  notes.steps = { a: b.timedIds.a.map((id) => steps.get(id) ?? []), b: b.timedIds.b.map((id) => steps.get(id) ?? []) };
  if (opts['save-log']) {
    await copyFile(svc.logPath, opts['save-log']);
    progress(`service log saved to ${opts['save-log']}`);
  }

  const report = renderReport(machine, b.s, b.stores, monitor, api, big, notes as Notes, b.baler);
  process.stdout.write(`${report.text}\n${report.finalLine}\n`);
  if (!opts['no-results-file']) {
    await writeFile(RESULTS_FILE, report.markdown);
    progress(`results written to ${RESULTS_FILE}`);
  }
}

async function gitDescribe(): Promise<string> {
  const head = await run('git', ['rev-parse', 'HEAD'], { cwd: REPO, timeoutMs: 30_000 });
  const dirty = await run('git', ['status', '--porcelain', '--', 'src', 'workers', 'scripts', 'package.json', 'package-lock.json'], { cwd: REPO, timeoutMs: 30_000 });
  const hash = head.code === 0 ? head.stdout.trim() : 'unknown';
  const changed = dirty.stdout.split('\n').filter(Boolean).length;
  return changed > 0 ? `${hash} + ${changed} uncommitted change(s) in src/, workers/, scripts/ or package*.json` : hash;
}

// ---------------------------------------------------------------------------
// the report

function mib(bytes: number | undefined): string {
  return bytes === undefined ? '–' : (bytes / MiB).toFixed(0);
}

function renderReport(m: Machine, s: Samples, stores: StoreUsage[], monitor: RssMonitor, api: ApiResult, big: BigResult | undefined, n: Notes, baler: Baler) {
  const row = (what: string, samples: number[]): string[] => {
    if (samples.length === 0) return [what, '0', '–', '–', '–', '–'];
    const x = summarize(samples);
    return [what, String(x.n), fmtMs(x.median), fmtMs(x.min), fmtMs(x.max), fmtMs(x.mean)];
  };
  const med = (xs: number[]): number => summarize(xs).median;
  const aRatio = med(s.aBaler) / med(s.aBuildah);
  const bRatio = med(s.bBaler) / med(s.bBuildah);
  const cacheMedian = med(s.cacheHit);
  const workerPeak = monitor.overall.worker ?? 0;
  const apiPeak = monitor.overall.api ?? 0;
  const addVerb = PEER_INPUT === 'tar' ? 'add <tree.tar>' : 'copy <dir>';

  const times = markdownTable(
    ['measurement', 'runs', 'median ms', 'min ms', 'max ms', 'mean ms'],
    [
      row('(a) baler: upload → build → download (scratch + tree, docker-archive, none)', s.aBaler),
      row('    … POST /v1/blobs (tree tar)', s.aUpload),
      row('    … POST /v1/builds?noCache=true → succeeded (polled every 10 ms)', s.aSubmitToDone),
      row('    …   of which queued (server: createdAt → startedAt)', s.aQueued),
      row('    …   of which running (server: startedAt → finishedAt)', s.aRunning),
      row('    … GET /v1/builds/{id}/image', s.aDownload),
      row(`(a) buildah: from scratch + ${addVerb} + commit docker-archive: + rm`, s.aBuildah),
      row('    … from scratch', s.aBuildahFrom),
      row(`    … ${addVerb}`, s.aBuildahAdd),
      row('    … commit docker-archive:', s.aBuildahCommit),
      row('    … rm', s.aBuildahRm),
      row('(a) physical limit: tar cf - DIR | sha256sum', s.aLimit),
      row('(b) baler: upload base → build (fromImage.blob + runAsRoot) → download', s.bBaler),
      row('    … POST /v1/blobs (base archive)', s.bUpload),
      row('    … POST /v1/builds?noCache=true → succeeded (polled every 10 ms)', s.bSubmitToDone),
      row('    …   of which queued (server)', s.bQueued),
      row('    …   of which running (server)', s.bRunning),
      row('    … GET /v1/builds/{id}/image', s.bDownload),
      row('(b) buildah: from docker-archive: + run + commit docker-archive: + rm', s.bBuildah),
      row('    … from docker-archive:', s.bBuildahFrom),
      row('    … run', s.bBuildahRun),
      row('    … commit docker-archive:', s.bBuildahCommit),
      row('    … rm', s.bBuildahRm),
    ],
    [false, true, true, true, true, true],
  );

  const stepRows = (which: 'a' | 'b'): string[][] => {
    const byLabel = new Map<string, number[]>();
    for (const segs of n.steps[which]) for (const seg of segs) byLabel.set(seg.label, [...(byLabel.get(seg.label) ?? []), seg.ms]);
    return [...byLabel].map(([label, xs]) => row(`(${which}) ${label}`, xs));
  };
  const stepRowsAll = [...stepRows('a'), ...stepRows('b')];
  const steps = stepRowsAll.length > 0
    ? markdownTable(['worker steps of the timed builds (its log; step → next step)', 'runs', 'median ms', 'min ms', 'max ms', 'mean ms'], stepRowsAll, [false, true, true, true, true, true])
    : 'worker steps: none in the service log (LOG_LEVEL above info?)';
  const cacheX = summarize(s.cacheHit);
  const cacheP = summarize(s.cachePost);
  const cache = markdownTable(
    ['cache hit: identical (a) spec, no noCache', 'runs', 'median ms', 'min ms', 'max ms', 'note'],
    [
      [`POST /v1/builds → succeeded (polled at once, then every ${CACHE_POLL_MS} ms)`, String(cacheX.n), cacheX.median.toFixed(1), cacheX.min.toFixed(1), cacheX.max.toFixed(1), `${n.cachedMarked} of ${cacheX.n} marked cached (cachedFrom)`],
      ['    … the POST alone (its answer)', String(cacheP.n), cacheP.median.toFixed(1), cacheP.min.toFixed(1), cacheP.max.toFixed(1), `${n.cacheAnsweredSucceeded} of ${cacheP.n} answered succeeded`],
    ],
    [false, true, true, true, true, false],
  );

  const ratios = markdownTable(
    ['ratio (of medians, same run)', 'value', 'target'],
    [
      ['a = (a) baler / buildah', fmtRatio(aRatio), '≤ 0.50×'],
      ['b = (b) baler / buildah', fmtRatio(bRatio), '≤ 0.50×'],
      ['(a) baler / physical limit', fmtRatio(med(s.aBaler) / med(s.aLimit)), ''],
      ['(a) buildah / physical limit', fmtRatio(med(s.aBuildah) / med(s.aLimit)), ''],
    ],
    [false, true, true],
  );

  const roles: Role[] = ['api', 'worker', 'redis'];
  const memory = markdownTable(
    ['phase (peak RSS, MiB)', 'duration s', 'API', 'worker', 'redis-server'],
    [
      ...monitor.phases.map((p) => [p.name, (p.ms / 1000).toFixed(1), ...roles.map((r) => mib(p.peak[r]))]),
      ['whole bench', '', ...roles.map((r) => mib(monitor.overall[r]))],
    ],
    [false, true, true, true, true],
  );

  const store = markdownTable(
    ['store on disk (DATA_DIR without redis/)', 'builds succeeded', 'MiB', 'blobs/ MiB', 'blob files', 'by directory'],
    [
      ...stores.map((x) => [x.label, String(x.builds), (x.bytes / MiB).toFixed(1), (x.blobsBytes / MiB).toFixed(1), String(x.blobCount), x.breakdown]),
      ['growth per (a) noCache build (median)', '', (med(s.aStoreGrowth) / MiB).toFixed(2), '', '', `(a) archive ${(n.aArchiveBytes / MiB).toFixed(1)} MiB`],
      ['growth per (b) noCache build (median)', '', (med(s.bStoreGrowth) / MiB).toFixed(2), '', '', `(b) archive ${(n.bArchiveBytes / MiB).toFixed(1)} MiB`],
    ],
    [false, true, true, true, true, false],
  );

  const cannonRow = (what: string, c: CannonResult, foreignCores: number): string[] => [what, c.reqPerSec.toFixed(0), String(c.p50), String(c.p99), String(c.maxMs), String(c.total), String(c.non2xx), String(c.errors + c.timeouts), foreignCores.toFixed(2)];
  const apiTable = markdownTable(
    [`GET /v1/builds/{id} (autocannon, ${CONNECTIONS} connections, ${CANNON_S} s)`, 'req/s', 'p50 ms', 'p99 ms', 'max ms', 'requests', 'non-2xx', 'errors', "others' cores"],
    [
      cannonRow('idle (nothing queued)', api.idle, api.idleForeign),
      cannonRow(`${api.builds} builds queued (worker paused)`, api.queued, api.queuedForeign),
      cannonRow(`while ${api.builds} tiny builds drain (worker building beside it)`, api.drain, api.drainForeign),
    ],
    [false, true, true, true, true, true, true, true, true],
  );
  const queueTable = markdownTable(
    ['queue', 'value'],
    [
      [`enqueue ${api.builds} tiny builds (16 POSTs in flight)`, `${fmtMs(api.enqueueMs)} ms (${((api.builds / api.enqueueMs) * 1000).toFixed(0)} builds/s); ${api.retried429} answers 429 (retried)`],
      [`drain: first POST → last build finished`, `${fmtMs(api.drainMs)} ms (${((api.builds / api.drainMs) * 1000).toFixed(1)} builds/s)`],
      ['builds finished before / during the loaded measurement', `${api.finishedBeforeCannon} / ${api.finishedDuringCannon}`],
      ['builds not succeeded', String(api.failed)],
      ['drain / idle req/s; p99', `${fmtRatio(api.drain.reqPerSec / api.idle.reqPerSec)}; ${api.drain.p99} ms vs ${api.idle.p99} ms`],
    ],
    [false, false],
  );

  const bigTable = big
    ? markdownTable(
        [`${(big.tarBytes / MiB).toFixed(0)} MiB image (pure build, contents = one streamed tar)`, 'value'],
        [
          ['input tar (random files of 4 MiB)', `${(big.tarBytes / MiB).toFixed(0)} MiB, ${big.files} files; written in ${fmtMs(big.genMs)} ms`],
          ['upload (POST /v1/blobs, streamed)', `${fmtMs(big.uploadMs)} ms (${(big.tarBytes / MiB / (big.uploadMs / 1000)).toFixed(0)} MiB/s)`],
          [`build (compression ${big.compression}): POST → succeeded`, `${fmtMs(big.buildMs)} ms (server running ${fmtMs(big.serverRunningMs)} ms)`],
          ['download (GET …/image)', `${fmtMs(big.downloadMs)} ms, ${(big.archiveBytes / MiB).toFixed(0)} MiB`],
          ['worker peak RSS during this phase', `${mib(big.peaks?.peak.worker)} MiB (target < 200 MB)`],
          ['API peak RSS during this phase', `${mib(big.peaks?.peak.api)} MiB`],
          ["others' CPU use over this phase", `${big.foreign.toFixed(2)} cores of ${m.nproc}`],
        ],
        [false, false],
      )
    : '2 GiB image: skipped (--no-big)';

  const yes = (ok: boolean): string => (ok ? 'yes' : 'no');
  const targets = markdownTable(
    ['target (issue 6)', 'measured', 'met'],
    [
      ['(a) ≤ 0.5× buildah', fmtRatio(aRatio), yes(aRatio <= 0.5)],
      ['(b) ≤ 0.5× buildah', fmtRatio(bRatio), yes(bRatio <= 0.5)],
      ['identical spec resubmitted ≤ 20 ms to succeeded', `${cacheMedian.toFixed(1)} ms`, yes(cacheMedian <= 20)],
      ['worker RSS < 200 MB while building a 2 GiB image', big ? `${mib(big.peaks?.peak.worker)} MiB` : 'not run', big ? yes((big.peaks?.peak.worker ?? Infinity) < 200 * MiB) : '–'],
      ['GET /v1/builds/{id} ≥ 5000 req/s', `${api.idle.reqPerSec.toFixed(0)} req/s`, yes(api.idle.reqPerSec >= 5000)],
      ['… p99 < 20 ms', `${api.idle.p99} ms`, yes(api.idle.p99 < 20)],
      ['… not slower with 1000 builds queued', `${api.queued.reqPerSec.toFixed(0)} req/s, p99 ${api.queued.p99} ms`, yes(api.queued.reqPerSec >= 0.9 * api.idle.reqPerSec && api.queued.p99 < 20)],
      ['… not slower while 1000 builds drain', `${api.drain.reqPerSec.toFixed(0)} req/s, p99 ${api.drain.p99} ms`, yes(api.drain.reqPerSec >= 0.9 * api.idle.reqPerSec && api.drain.p99 < 20)],
    ],
    [false, true, true],
  );

  const noCacheNote = n.noCacheServedCached > 0
      ? `accepted, but ${n.noCacheServedCached} noCache build(s) came back marked cached`
      : 'accepted (no noCache build came back marked cached)';
  const machineLines = [
    `machine: nproc=${m.nproc}, CPU "${m.cpuModel}", ${m.memGiB} GiB, Linux ${m.kernel}; vmx/svm: ${m.hardwareVirt ? 'yes' : 'no'}; /dev/kvm: ${m.devKvm ? 'present' : 'absent'}; QEMU accel seen: ${n.accel}`,
    `software: node ${m.node}; ${m.qemu}; ${m.buildah}; ${m.runc}`,
    `baler commit: ${n.commit}`,
    `machine load: load average ${n.loadBefore} before, ${n.loadAfter} after; timed rounds during which someone else's QEMU ran: ${n.disturbedRounds} of ${RUNS}; timed sides started while others used > ${CPU_QUIET_CORES} cores (after waiting up to ${CPU_WAIT_S} s): ${n.cpuNotQuiet}`,
    `others' CPU during the timed sides (cores of ${m.nproc}; median / max): ${Object.entries(n.foreign).map(([k, v]) => `${k} ${summarize(v).median.toFixed(2)} / ${summarize(v).max.toFixed(2)}`).join(', ')}`,
    `runs: ${RUNS} timed per measurement${RUNS < 5 ? ' (fewer than the issue\'s 5)' : ''} after ${WARMUP} warm-up round(s); rounds alternate baler and buildah, swapping who goes first; buildah gets a fresh private storage root per run (set up and removed untimed)`,
    `inputs (seed '${SEED}'): busybox-static root (${n.tree.applets} applet symlinks) + ${n.tree.files} files / ${(n.tree.bytes / MiB).toFixed(0)} MiB under /${n.tree.treePrefix} (half random, half text); tar ${n.tree.tarBytes} bytes ${n.tree.tarDigest}; generated in ${fmtMs(n.treeGenMs)} ms`,
    `outputs: (a) baler archive ${n.aArchiveBytes} bytes (${n.aArchiveDigests.size === 1 ? 'identical in every run' : `${n.aArchiveDigests.size} different digests over the runs`}), buildah ${n.buildahAArchiveBytes} bytes; (b) baler ${n.bArchiveBytes} bytes; checks: ${n.aChecks}; (b) both hold the change`,
    `?noCache=true: ${noCacheNote}`,
    `worker processes seen: ${n.workerPids.join(', ')}${n.workerPids.length > 1 ? ' (the worker was restarted)' : ''}`,
    `service log: ${n.logSummary}`,
  ];

  const finalLine = `bench: a=${aRatio.toFixed(2)} b=${bRatio.toFixed(2)} cache_hit_ms=${cacheMedian.toFixed(1)} worker_rss_mb=${(workerPeak / MiB).toFixed(0)}`;
  const body = [times, '', steps, '', ratios, '', cache, '', memory, '', store, '', apiTable, '', queueTable, '', bigTable, '', targets];
  const text = [...machineLines, '', ...body].join('\n');

  const markdown = [
    '# bench results (issue 6)',
    '',
    `Date: ${new Date().toISOString()}  `,
    `Command: \`${NPM_COMMAND}\` (= \`${COMMAND}\`)`,
    '',
    ...machineLines.map((l) => `- ${l}`),
    '',
    '## How each number is measured',
    '',
    '- baler runs as a real service (`node --import tsx src/main.ts`, one worker, its private redis-server, a fresh',
    '  DATA_DIR, 127.0.0.1) and is measured over HTTP with keep-alive connections, as a CI job would use it.',
    '- (a) baler: from the first byte of `POST /v1/blobs` (the tree tar, streamed) to the last byte of',
    '  `GET /v1/builds/{id}/image` written to a file; between them `POST /v1/builds?noCache=true` with',
    '  `{"name":"bench-a","contents":[{"tar":"<digest>","to":"/"}],"format":"docker-archive","compression":"none"}`',
    '  and `GET /v1/builds/{id}` every 10 ms until `succeeded`. The queued/running rows are the server\'s own',
    '  timestamps. Each download is checked (untimed) against the build\'s archive digest and size; the warm-up',
    "  outputs of both sides are checked to hold every file of the tree.",
    '- (b) baler: the same, uploading the warm-up\'s (a) archive (baler\'s) and building',
    '  `{"fromImage":{"blob":"<digest>"},"runAsRoot":CHANGE_SCRIPT,"format":"docker-archive","compression":"none"}`.',
    '- buildah: one CLI process per step, fully private state (bench/support/buildah.ts), vfs storage, runc:',
    '',
    '```sh',
    ...describeBuildahScratchCommands(PEER_INPUT === 'tar' ? 'tar' : 'dir'),
    ...describeBuildahCommands().filter((l) => !l.startsWith('#')),
    '```',
    '',
    '  (b) on both sides starts from the same file, baler\'s (a) archive; the change:',
    '',
    '```sh',
    CHANGE_SCRIPT,
    '```',
    '',
    '- physical limit for (a): `tar -C DIR -cf - . | sha256sum` over the generated root (page cache warm, as for both builders).',
    '- cache hit: after one priming submission of the identical (a) spec without noCache, the time from sending',
    `  \`POST /v1/builds\` to seeing \`succeeded\` (in the POST answer, or by polling at once and then every ${CACHE_POLL_MS} ms).`,
    '- peak RSS: VmRSS of the API (main) process, the worker (its child running workers/build-worker.ts) and',
    '  redis-server sampled every 50 ms, and VmHWM read at the end of each phase after resetting it at the start',
    '  (`echo 5 > /proc/PID/clear_refs`); the larger counts. Children of the worker (QEMU, tar, mksquashfs) are not counted.',
    '- store: `du -sb` of each directory of DATA_DIR except redis/ (the queue\'s AOF), with the number of blob files;',
    '  the per-build growth is the store\'s size after minus before each timed (a) or (b) build.',
    '- API: autocannon (its CLI with --json, in its own process) against `GET /v1/builds/{id}` of a finished (a)',
    '  build; then with tiny builds (distinct one-file contents, 16 POSTs in flight) queued while the worker is',
    '  paused (SIGSTOP: what the queue size does to the API), then while they drain after SIGCONT. The drain',
    '  time runs from SIGCONT to the latest `finishedAt` among them.',
    '- 2 GiB image: a tar of random 4 MiB files written by streaming (never in memory), uploaded streamed, built',
    '  (`?noCache=true`), downloaded and hashed (not stored); the worker\'s peak RSS over that phase.',
    '',
    '## Results',
    '',
    ...body,
    '',
    '```',
    finalLine,
    '```',
    '',
  ].join('\n');
  return { text, markdown, finalLine };
}

main().then(
  () => process.exit(0),
  async (err: unknown) => {
    if (cleanups.interrupted) return; // the signal handler cleans up and exits
    await cleanups.runAll();
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
