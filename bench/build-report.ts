import type { CannonResult } from './support/load.ts';
import type { Machine } from './support/machine.ts';
import type { PhasePeaks, Role, RssMonitor } from './support/rss.ts';
import { CHANGE_SCRIPT } from './support/baler.ts';
import { describeBuildahCommands, describeBuildahScratchCommands } from './support/buildah.ts';
import type { StepSegment } from './support/service.ts';
import { fmtMs, fmtRatio, markdownTable, summarize } from './support/stats.ts';
import type { BenchTree } from './support/tree.ts';
import type { StoreUsage } from './build-store-usage.ts';
import { CACHE_POLL_MS, CANNON_S, COMMAND, CONNECTIONS, CPU_QUIET_CORES, CPU_WAIT_S, MiB, NPM_COMMAND, PEER_INPUT, RUNS, SEED, WARMUP } from './build-context.ts';

// What bench/build.ts records, and its Markdown report.

export interface Samples {
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

export function newSamples(): Samples {
  const s = {} as Record<keyof Samples, number[]>;
  for (const k of [
    'aBaler',
    'aUpload',
    'aSubmitToDone',
    'aQueued',
    'aRunning',
    'aDownload',
    'aStoreGrowth',
    'aBuildah',
    'aBuildahFrom',
    'aBuildahAdd',
    'aBuildahCommit',
    'aBuildahRm',
    'aLimit',
    'bBaler',
    'bUpload',
    'bSubmitToDone',
    'bQueued',
    'bRunning',
    'bDownload',
    'bStoreGrowth',
    'bBuildah',
    'bBuildahFrom',
    'bBuildahRun',
    'bBuildahCommit',
    'bBuildahRm',
    'cacheHit',
    'cachePost',
  ] as (keyof Samples)[])
    s[k] = [];
  return s as Samples;
}

export interface BigResult {
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

export interface ApiResult {
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

export interface Notes {
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

export function mib(bytes: number | undefined): string {
  return bytes === undefined ? '–' : (bytes / MiB).toFixed(0);
}

export function renderReport(m: Machine, s: Samples, stores: StoreUsage[], monitor: RssMonitor, api: ApiResult, big: BigResult | undefined, n: Notes) {
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
  const steps =
    stepRowsAll.length > 0
      ? markdownTable(['worker steps of the timed builds (its log; step → next step)', 'runs', 'median ms', 'min ms', 'max ms', 'mean ms'], stepRowsAll, [false, true, true, true, true, true])
      : 'worker steps: none in the service log (LOG_LEVEL above info?)';
  const cacheX = summarize(s.cacheHit);
  const cacheP = summarize(s.cachePost);
  const cache = markdownTable(
    ['cache hit: identical (a) spec, no noCache', 'runs', 'median ms', 'min ms', 'max ms', 'note'],
    [
      [
        `POST /v1/builds → succeeded (polled at once, then every ${CACHE_POLL_MS} ms)`,
        String(cacheX.n),
        cacheX.median.toFixed(1),
        cacheX.min.toFixed(1),
        cacheX.max.toFixed(1),
        `${n.cachedMarked} of ${cacheX.n} marked cached (cachedFrom)`,
      ],
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
    [...monitor.phases.map((p) => [p.name, (p.ms / 1000).toFixed(1), ...roles.map((r) => mib(p.peak[r]))]), ['whole bench', '', ...roles.map((r) => mib(monitor.overall[r]))]],
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

  const cannonRow = (what: string, c: CannonResult, foreignCores: number): string[] => [
    what,
    c.reqPerSec.toFixed(0),
    String(c.p50),
    String(c.p99),
    String(c.maxMs),
    String(c.total),
    String(c.non2xx),
    String(c.errors + c.timeouts),
    foreignCores.toFixed(2),
  ];
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

  const noCacheNote = n.noCacheServedCached > 0 ? `accepted, but ${n.noCacheServedCached} noCache build(s) came back marked cached` : 'accepted (no noCache build came back marked cached)';
  const machineLines = [
    `machine: nproc=${m.nproc}, CPU "${m.cpuModel}", ${m.memGiB} GiB, Linux ${m.kernel}; vmx/svm: ${m.hardwareVirt ? 'yes' : 'no'}; /dev/kvm: ${m.devKvm ? 'present' : 'absent'}; QEMU accel seen: ${n.accel}`,
    `software: node ${m.node}; ${m.qemu}; ${m.buildah}; ${m.runc}`,
    `baler commit: ${n.commit}`,
    `machine load: load average ${n.loadBefore} before, ${n.loadAfter} after; timed rounds during which someone else's QEMU ran: ${n.disturbedRounds} of ${RUNS}; timed sides started while others used > ${CPU_QUIET_CORES} cores (after waiting up to ${CPU_WAIT_S} s): ${n.cpuNotQuiet}`,
    `others' CPU during the timed sides (cores of ${m.nproc}; median / max): ${Object.entries(n.foreign)
      .map(([k, v]) => `${k} ${summarize(v).median.toFixed(2)} / ${summarize(v).max.toFixed(2)}`)
      .join(', ')}`,
    `runs: ${RUNS} timed per measurement${RUNS < 5 ? " (fewer than the issue's 5)" : ''} after ${WARMUP} warm-up round(s); rounds alternate baler and buildah, swapping who goes first; buildah gets a fresh private storage root per run (set up and removed untimed)`,
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
    "  and `GET /v1/builds/{id}` every 10 ms until `succeeded`. The queued/running rows are the server's own",
    "  timestamps. Each download is checked (untimed) against the build's archive digest and size; the warm-up",
    '  outputs of both sides are checked to hold every file of the tree.',
    "- (b) baler: the same, uploading the warm-up's (a) archive (baler's) and building",
    '  `{"fromImage":{"blob":"<digest>"},"runAsRoot":CHANGE_SCRIPT,"format":"docker-archive","compression":"none"}`.',
    '- buildah: one CLI process per step, fully private state (bench/support/buildah.ts), vfs storage, runc:',
    '',
    '```sh',
    ...describeBuildahScratchCommands(PEER_INPUT === 'tar' ? 'tar' : 'dir'),
    ...describeBuildahCommands().filter((l) => !l.startsWith('#')),
    '```',
    '',
    "  (b) on both sides starts from the same file, baler's (a) archive; the change:",
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
    "- store: `du -sb` of each directory of DATA_DIR except redis/ (the queue's AOF), with the number of blob files;",
    "  the per-build growth is the store's size after minus before each timed (a) or (b) build.",
    '- API: autocannon (its CLI with --json, in its own process) against `GET /v1/builds/{id}` of a finished (a)',
    '  build; then with tiny builds (distinct one-file contents, 16 POSTs in flight) queued while the worker is',
    '  paused (SIGSTOP: what the queue size does to the API), then while they drain after SIGCONT. The drain',
    '  time runs from SIGCONT to the latest `finishedAt` among them.',
    '- 2 GiB image: a tar of random 4 MiB files written by streaming (never in memory), uploaded streamed, built',
    "  (`?noCache=true`), downloaded and hashed (not stored); the worker's peak RSS over that phase.",
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
