/**
 * `npm run bench:vm` (node --import tsx bench/vm.ts [--runs N] [--warmup N] [--quiet-wait S] [--no-results-file]):
 * the cost of running a build script in a QEMU microVM, beside buildah doing the same change.
 *
 *  1. baler VM overhead: QemuVmRunner.run() of `true`, no lowers, from the call until the upper
 *     tar is fully read (then dispose(), also reported);
 *  2. baler whole build: runBuild() of a `fromImage` + `runAsRoot` spec with a fresh FsBlobStore
 *     per run (the base, a pure build of a busybox-static root, is built in that store first,
 *     untimed: in reality it is already there), from the call until the archive is stored;
 *  3. the peer: `buildah from docker-archive:<baler's base archive>` + `buildah run --runtime runc`
 *     + `buildah commit … docker-archive:` + `buildah rm`, Debian's buildah, fully private state
 *     (bench/support/buildah.ts), a fresh storage root per run (created and removed untimed).
 *
 * Rounds alternate baler and buildah (and swap who goes first each round). This machine is shared:
 * before each side we wait (up to --quiet-wait seconds, default 120) until no one else's QEMU runs,
 * and the output says how many timed rounds still overlapped one. Medians, min/max and
 * ratios are printed, then one line `bench:vm: vm_overhead_ms=… build_ms=… buildah_ms=… ratio=…`,
 * and the same tables go to bench/RESULTS-vm.md. Needs root (buildah's runc, like the tests).
 * Never part of `npm test`.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { QemuVmRunner } from '../src/vm/qemu-vm-runner.ts';
import { harnessTmpBase } from '../test/support/run.ts';
import { checkChange } from './support/archive.ts';
import { busyboxRootTar, buildBase, CHANGE_SCRIPT, recordingLogger, timedBalerBuild, timedVmOverhead } from './support/baler.ts';
import { describeBuildahCommands, ensureBuildah, startBuildah, timedBuildahBuild, type PrivateBuildah } from './support/buildah.ts';
import { machineInfo, QemuWatcher, waitForQuiet, type Machine } from './support/machine.ts';
import { fmtMs, fmtRatio, markdownTable, summarize, type Summary } from './support/stats.ts';

const here = dirname(fileURLToPath(import.meta.url));
const RESULTS_FILE = join(here, 'RESULTS-vm.md');

const { values: opts } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
    'quiet-wait': { type: 'string', default: '120' },
    'no-results-file': { type: 'boolean', default: false },
  },
  strict: true,
});
const RUNS = Number(opts.runs);
const WARMUP = Number(opts.warmup);
if (!Number.isSafeInteger(RUNS) || RUNS < 1) throw new Error(`--runs must be a positive integer, got ${opts.runs}`);
if (!Number.isSafeInteger(WARMUP) || WARMUP < 0) throw new Error(`--warmup must be a non-negative integer, got ${opts.warmup}`);
const QUIET_WAIT_S = Number(opts['quiet-wait']);
if (!(QUIET_WAIT_S >= 0)) throw new Error(`--quiet-wait must be a number of seconds, got ${opts['quiet-wait']}`);

function progress(text: string): void {
  process.stderr.write(`bench:vm: ${text}\n`);
}

// ---------------------------------------------------------------------------
// cleanup on every exit path

const cleanups = new Set<() => Promise<void>>();
let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (interrupted) return;
    interrupted = true;
    progress(`${signal}: cleaning up`);
    void Promise.allSettled([...cleanups].map((c) => c())).then(() => process.exit(130));
  });
}

async function withCleanup<T>(cleanup: () => Promise<void>, body: () => Promise<T>): Promise<T> {
  cleanups.add(cleanup);
  try {
    return await body();
  } finally {
    await cleanup();
    cleanups.delete(cleanup);
  }
}

// ---------------------------------------------------------------------------

interface Samples {
  vm: number[];
  vmWithDispose: number[];
  build: number[];
  buildBeforeVm: number[];
  buildVmStep: number[];
  buildAfterVm: number[];
  buildah: number[];
  buildahFrom: number[];
  buildahRun: number[];
  buildahCommit: number[];
  buildahRm: number[];
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench:vm needs root (buildah runs runc rootful, as in the tests)');
  const buildahVersion = await ensureBuildah();
  const machine = await machineInfo(buildahVersion);

  const tmpBase = harnessTmpBase();
  const work = await mkdtemp(join(tmpBase, 'bench-vm-'));
  const removeWork = (): Promise<void> => rm(work, { recursive: true, force: true });
  await withCleanup(removeWork, async () => {
    const busyboxTar = await busyboxRootTar(work);
    // The peer's input: the archive of baler's base build (uncompressed docker-archive).
    const base = await buildBase(join(work, 'base-store'), busyboxTar);
    progress(`base image ${base.result.imageId}, archive ${base.result.archive.size} bytes`);

    const { logger, lines } = recordingLogger(process.env.LOG_LEVEL ?? 'info');
    const vm = new QemuVmRunner({ logger });
    const watcher = new QemuWatcher();
    watcher.start();
    const loadBefore = loadavg().map((l) => l.toFixed(2)).join(' ');

    const s: Samples = {
      vm: [], vmWithDispose: [], build: [], buildBeforeVm: [], buildVmStep: [], buildAfterVm: [],
      buildah: [], buildahFrom: [], buildahRun: [], buildahCommit: [], buildahRm: [],
    };
    const total = WARMUP + RUNS;
    let disturbedRounds = 0;
    for (let round = 0; round < total; round++) {
      const timed = round >= WARMUP;
      const label = timed ? `run ${round - WARMUP + 1}/${RUNS}` : `warm-up ${round + 1}/${WARMUP}`;

      const quiet = async (): Promise<void> => {
        const waited = await waitForQuiet(QUIET_WAIT_S * 1000);
        if (waited < 0) progress(`${label}: other QEMU processes still running after ${QUIET_WAIT_S} s; going on`);
        else if (waited >= 250) progress(`${label}: waited ${(waited / 1000).toFixed(1)} s for other QEMU processes to end`);
      };
      const foreignBefore = watcher.foreign.size;

      const balerSide = async (): Promise<string> => {
        await quiet();
        const v = await timedVmOverhead(vm);
        const dir = await mkdtemp(join(work, 'build-'));
        const b = await withCleanup(
          () => rm(dir, { recursive: true, force: true }),
          async () => {
            const r = await timedBalerBuild(dir, busyboxTar, vm);
            await checkChange(r.archivePath, 'baler');
            return r;
          },
        );
        if (timed) {
          s.vm.push(v.ms);
          s.vmWithDispose.push(v.withDisposeMs);
          s.build.push(b.ms);
          s.buildBeforeVm.push(b.beforeVmMs);
          s.buildVmStep.push(b.vmStepMs);
          s.buildAfterVm.push(b.afterVmMs);
        }
        return `vm ${fmtMs(v.ms)} ms (+dispose ${fmtMs(v.withDisposeMs)}), build ${fmtMs(b.ms)} ms (vm step ${fmtMs(b.vmStepMs)})`;
      };
      const peerSide = async (): Promise<string> => {
        let bh: PrivateBuildah | undefined;
        const r = await withCleanup(
          async () => {
            await bh?.cleanup();
          },
          async () => {
            await quiet();
            bh = await startBuildah(tmpBase);
            const out = await timedBuildahBuild(bh, base.archivePath, CHANGE_SCRIPT, join(bh.root, 'out.tar'));
            await checkChange(out.archivePath, 'buildah');
            return out;
          },
        );
        if (timed) {
          s.buildah.push(r.ms);
          s.buildahFrom.push(r.phases.from);
          s.buildahRun.push(r.phases.run);
          s.buildahCommit.push(r.phases.commit);
          s.buildahRm.push(r.phases.rm);
        }
        const p = r.phases;
        return `buildah ${fmtMs(r.ms)} ms (from ${fmtMs(p.from)}, run ${fmtMs(p.run)}, commit ${fmtMs(p.commit)}, rm ${fmtMs(p.rm)})`;
      };

      // Alternate who goes first, so slow drift of the machine does not favour one side.
      const parts = round % 2 === 0 ? [await balerSide(), await peerSide()] : [await peerSide(), await balerSide()].reverse();
      const disturbed = watcher.foreign.size > foreignBefore;
      if (disturbed && timed) disturbedRounds++;
      progress(`${label}: ${parts.join('; ')}${disturbed ? ' [another QEMU ran meanwhile]' : ''}`);
    }
    watcher.stop();

    const accel = accelerator(watcher, lines);
    const load = `load average ${loadBefore} before, ${loadavg().map((l) => l.toFixed(2)).join(' ')} after; timed rounds during which someone else's QEMU ran: ${disturbedRounds} of ${RUNS}`;
    if (disturbedRounds > 0) progress(`warning: someone else's QEMU ran during ${disturbedRounds} timed round(s); those timings are disturbed`);
    const report = renderReport(machine, accel, load, s);
    process.stdout.write(`${report.text}\n${report.finalLine}\n`);
    if (!opts['no-results-file']) {
      await writeFile(RESULTS_FILE, report.markdown);
      progress(`results written to ${RESULTS_FILE}`);
    }
  });
}

/** The accelerator QEMU ran with: from its command lines (what actually ran), else the runner's logs. */
function accelerator(watcher: QemuWatcher, logLines: readonly string[]): string {
  if (watcher.accels.size > 0) return [...watcher.accels].sort().join(', ');
  const fromLogs = new Set<string>();
  for (const line of logLines) {
    const m = /"accel"\s*:\s*"([^"]+)"/.exec(line);
    if (m?.[1]) fromLogs.add(m[1]);
  }
  return fromLogs.size > 0 ? `${[...fromLogs].join(', ')} (from the runner's log)` : 'unknown';
}

interface Report {
  text: string;
  markdown: string;
  finalLine: string;
}

function renderReport(m: Machine, accel: string, load: string, s: Samples): Report {
  const row = (what: string, samples: number[]): string[] => {
    const x = summarize(samples);
    return [what, String(x.n), fmtMs(x.median), fmtMs(x.min), fmtMs(x.max), fmtMs(x.mean)];
  };
  const vm = summarize(s.vm);
  const build = summarize(s.build);
  const buildah = summarize(s.buildah);
  const buildahRun = summarize(s.buildahRun);
  const vmStep = summarize(s.buildVmStep);
  const ratio = (a: Summary, b: Summary): string => fmtRatio(a.median / b.median);

  const times = markdownTable(
    ['measurement', 'runs', 'median ms', 'min ms', 'max ms', 'mean ms'],
    [
      row('1. baler VM overhead: QemuVmRunner.run(`true`), no lowers → upper tar read', s.vm),
      row('   … the same, until dispose() returned', s.vmWithDispose),
      row('2. baler whole build: runBuild(fromImage + runAsRoot) → archive stored', s.build),
      row('   … before the VM step (base image, contents)', s.buildBeforeVm),
      row('   … VM step (inputs, QEMU, upper tar stored, dispose, upper → tree)', s.buildVmStep),
      row('   … after the VM step (layer, config, archive stored)', s.buildAfterVm),
      row('3. buildah from + run --runtime runc + commit + rm', s.buildah),
      row('   … buildah from docker-archive:', s.buildahFrom),
      row('   … buildah run --runtime runc', s.buildahRun),
      row('   … buildah commit docker-archive:', s.buildahCommit),
      row('   … buildah rm', s.buildahRm),
    ],
    [false, true, true, true, true, true],
  );
  const ratios = markdownTable(
    ['ratio (of medians)', 'value'],
    [
      ['baler whole build / buildah (from+run+commit+rm)', ratio(build, buildah)],
      ['baler VM overhead / buildah (from+run+commit+rm)', ratio(vm, buildah)],
      ['baler VM step in the build / buildah run', ratio(vmStep, buildahRun)],
      ['baler VM overhead / baler whole build', ratio(vm, build)],
    ],
    [false, true],
  );
  const machineLines = [
    `machine: nproc=${m.nproc}, CPU "${m.cpuModel}", ${m.memGiB} GiB, Linux ${m.kernel}; vmx/svm: ${m.hardwareVirt ? 'yes' : 'no'}; /dev/kvm: ${m.devKvm ? 'present' : 'absent'}`,
    `accel used by QEMU: ${accel}${process.env.BALER_VM_ACCEL ? ` (BALER_VM_ACCEL=${process.env.BALER_VM_ACCEL})` : ''}`,
    `software: node ${m.node}; ${m.qemu}; ${m.buildah}; ${m.runc}`,
    `machine load: ${load}`,
    `runs: ${RUNS} timed per measurement after ${WARMUP} warm-up round(s); rounds alternate baler and buildah, swapping who goes first`,
  ];
  const finalLine = `bench:vm: vm_overhead_ms=${fmtMs(vm.median)} build_ms=${fmtMs(build.median)} buildah_ms=${fmtMs(buildah.median)} ratio=${(build.median / buildah.median).toFixed(2)}`;
  const text = [...machineLines, '', times, '', ratios].join('\n');

  const command = `node --import tsx bench/vm.ts --runs ${RUNS} --warmup ${WARMUP}`;
  const markdown = [
    '# bench:vm results',
    '',
    `Date: ${new Date().toISOString()}  `,
    `Command: \`${command}\` (\`npm run bench:vm\`)`,
    '',
    ...machineLines.map((l) => `- ${l}`),
    '',
    'The change, on both sides (base: a baler pure build of a busybox-static root, /bin/busybox + /bin/sh):',
    '',
    '```sh',
    CHANGE_SCRIPT,
    '```',
    '',
    'baler: a fresh FsBlobStore per run (the base build is stored there first, untimed), `compression: none`.',
    'buildah: a fresh private storage root per run (vfs; created and removed untimed), `--network none`,',
    "runc with a private state dir; every step is a separate `buildah` process, as a user would run it:",
    '',
    '```sh',
    ...describeBuildahCommands(),
    '```',
    '',
    times,
    '',
    ratios,
    '',
    '```',
    finalLine,
    '```',
    '',
    'Reading it: `buildah commit` with the vfs driver computes the layer by walking the container',
    "tree (containers/storage's naive diff) and then waits for the wall clock to reach the next whole",
    'second (seen with strace: an idle wait of up to ~0.9 s ending just after the second boundary), so',
    'commit takes anything from ~0.1 to ~1.1 s depending on the clock phase, and the buildah median over',
    'few runs moves with it: compare the mean and min/max. On a shared machine, load from',
    "other jobs moves everything; the machine-load line says how many rounds overlapped someone else's QEMU.",
    '',
  ].join('\n');
  return { text, markdown, finalLine };
}

main().catch(async (err: unknown) => {
  await Promise.allSettled([...cleanups].map((c) => c()));
  process.stderr.write(`bench:vm failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
