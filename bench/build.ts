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
import { copyFile, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { harnessTmpBase, run } from '../test/support/run.ts';
import { checkChange, topLayerOf } from './support/archive.ts';
import { CHANGE_SCRIPT } from './support/baler.ts';
import { ensureBuildah, timedBuildahBuild, timedBuildahScratchBuild, withPrivateBuildah } from './support/buildah.ts';
import { autocannon, enqueueTinyBuilds, mapLimit, type CannonResult } from './support/load.ts';
import { machineInfo, QemuWatcher, waitForQuiet, type Machine } from './support/machine.ts';
import { ForeignCpu } from './support/cpu.ts';
import { RssMonitor } from './support/rss.ts';
import { buildSteps, fileSink, logProblems, redisPidOf, startBalerService, workerPidOf, type BalerService } from './support/service.ts';
import { elapsedMs, fmtMs, msBetween, summarize } from './support/stats.ts';
import { generateTree, writeBigTar, type BenchTree } from './support/tree.ts';
import { Baler, FINAL, hashingSink, isCached, serverMs, sha256Of, type BuildView } from './build-baler.ts';
import {
  BIG,
  BIG_BYTES,
  BIG_COMPRESSION,
  CACHE_POLL_MS,
  CACHE_RUNS,
  CANNON_S,
  checkInterrupted,
  cleanups,
  CONNECTIONS,
  CPU_QUIET_CORES,
  CPU_WAIT_S,
  MiB,
  opts,
  PEER_INPUT,
  POLL_MS,
  progress,
  QUEUE_BUILDS,
  QUIET_WAIT_S,
  REPO,
  RESULTS_FILE,
  RUNS,
  SEED,
  sleep,
  TREE_BYTES,
  TREE_FILES,
  WARMUP,
  withCleanup,
} from './build-context.ts';
import { mib, newSamples, renderReport, type ApiResult, type BigResult, type Notes, type Samples } from './build-report.ts';
import { storeBytes, storeUsage, type StoreUsage } from './build-store-usage.ts';

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
    notes: {
      ...given.notes,
      loadBefore: loadavg()
        .map((l) => l.toFixed(2))
        .join(' '),
      aArchiveDigests: new Set(),
    },
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
  if (dl.bytes !== done.result?.archive.size || dl.contentLength !== dl.bytes)
    throw new Error(`(${which}) download: ${dl.bytes} bytes, Content-Length ${dl.contentLength}, archive ${done.result?.archive.size}`);
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
  return balerRound(
    b,
    round,
    'a',
    { path: tree.tar, digest: tree.tarDigest },
    () => b.specA,
    async (out, digest, id) => {
      b.lastABuild = id;
      notes.aArchiveBytes = (await stat(out)).size;
      notes.aArchiveDigests?.add(digest);
      if (round.index === 0) {
        await copyFile(out, b.baseArchive);
        const c = await countTreeFiles(out, tree.treePrefix);
        if (c.files !== tree.files || c.bytes !== tree.bytes) throw new Error(`baler (a): the layer has ${c.files} tree files / ${c.bytes} bytes, expected ${tree.files} / ${tree.bytes}`);
        notes.aChecks = `baler: ${c.files} files / ${c.bytes} bytes under /${tree.treePrefix}`;
      }
    },
  );
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
  let enq: Awaited<ReturnType<typeof enqueueTinyBuilds>>;
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
  if (dl.bytes !== done.result?.archive.size || h.digest() !== done.result?.archive.digest)
    throw new Error(`big download: ${dl.bytes} bytes ${h.digest()}, archive ${done.result?.archive.size} ${done.result?.archive.digest}`);
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
  notes.loadAfter = loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
  notes.accel = watcher.accels.size > 0 ? [...watcher.accels].sort().join(', ') : 'unknown (no QEMU seen)';
  notes.workerPids = monitor.workerPids;
  const problems = await logProblems(svc.logPath);
  notes.logSummary = `${problems.error} error and ${problems.warn} warning records` + (problems.messages.size > 0 ? `: ${[...problems.messages].map(([m, n]) => `${m} ×${n}`).join('; ')}` : '');
  notes.noCacheServedCached = b.noCacheServedCached;
  await svc.stop();
  const steps = await buildSteps(svc.logPath);
  notes.steps = { a: b.timedIds.a.map((id) => steps.get(id) ?? []), b: b.timedIds.b.map((id) => steps.get(id) ?? []) };
  if (opts['save-log']) {
    await copyFile(svc.logPath, opts['save-log']);
    progress(`service log saved to ${opts['save-log']}`);
  }

  const report = renderReport(machine, b.s, b.stores, monitor, api, big, notes as Notes);
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

main().then(
  () => process.exit(0),
  async (err: unknown) => {
    if (cleanups.interrupted) return; // the signal handler cleans up and exits
    await cleanups.runAll();
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
