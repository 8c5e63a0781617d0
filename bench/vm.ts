/**
 * `npm run bench:vm` (node --import tsx bench/vm.ts [--runs N] [--warmup N] [--quiet-wait S] [--no-results-file]):
 * the cost of running a build script in a QEMU microVM, beside buildah doing the same change.
 *
 *  1. baler VM overhead: QemuVmRunner.run() of `true`, no lowers, from the call until the upper
 *     tar is fully read (then dispose(), also reported), cold (the step boots its VM) and pooled
 *     (BALER_VM_POOL=1: a warm VM, booted earlier and untimed, is already waiting when run() is
 *     called; the timing starts at that call, i.e. when the job is handed over);
 *  2. baler whole build: runBuild() of a `fromImage` + `runAsRoot` spec with a fresh FsBlobStore
 *     per run (the base, a pure build of a busybox-static root, is built in that store first,
 *     untimed: in reality it is already there), from the call until the archive is stored; cold
 *     and pooled as in 1;
 *  3. the peer: `buildah from docker-archive:<baler's base archive>` + `buildah run --runtime runc`
 *     + `buildah commit … docker-archive:` + `buildah rm`, Debian's buildah, fully private state
 *     (bench/support/buildah.ts), a fresh storage root per run (created and removed untimed).
 *
 *  4. arm64 (unless --no-arm64), on this amd64 host: baler's whole build of the same change for
 *     linux/arm64 (an arm64 busybox-static base, Debian's .deb), its VM step in a
 *     qemu-system-aarch64 microVM under TCG, cold and pooled as in 2; and buildah's `from --arch
 *     arm64` + `run` + `commit` + `rm` of it, the `run` under qemu-user (binfmt_misc's
 *     qemu-aarch64, registered by bench/support/arm64.ts when missing). If qemu-user cannot be
 *     registered, the buildah arm64 row says why and is not measured.
 *
 * Each round runs the sides (baler cold, baler pooled, buildah; then the same three for arm64), rotating who goes first.
 * The pool's replacement VM boots while a pooled step runs, as it does in the service. This
 * machine is shared: before each side we wait (up to --quiet-wait seconds, default 120) until no
 * one else's QEMU uses CPU (an idle one, e.g. another service's warm VM waiting for a job, is no
 * competitor), the output says how many timed rounds someone else's QEMUs still took CPU in,
 * and the 1-minute load average is sampled every round. Medians, min/max and ratios are printed, then
 * one line `bench:vm: vm_overhead_ms=… vm_overhead_pooled_ms=… build_ms=… build_pooled_ms=…
 * buildah_ms=… ratio=… ratio_pooled=…` (with arm64: then `arm64_vm_step_ms=… arm64_vm_step_pooled_ms=…
 * buildah_arm64_run_ms=…`), and the same tables go to bench/RESULTS-vm.md. Needs root
 * (buildah's runc, like the tests). Never part of `npm test`.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { arm64 } from '../src/vm/platforms/arm64.ts';
import { QemuVmRunner } from '../src/vm/qemu-vm-runner.ts';
import { harnessTmpBase } from '../test/support/run.ts';
import { checkArchitecture, checkChange } from './support/archive.ts';
import { arm64Busybox, ensureQemuUserAarch64, type QemuUser } from './support/arm64.ts';
import { busyboxRootTar, buildBase, CHANGE_SCRIPT, recordingLogger, timedBalerBuild, timedVmOverhead } from './support/baler.ts';
import { describeBuildahCommands, ensureBuildah, timedBuildahBuild, withPrivateBuildah } from './support/buildah.ts';
import { foreignQemuPids, machineInfo, QemuWatcher, type Machine } from './support/machine.ts';
import { fmtMs, fmtRatio, markdownTable, summarize, type Summary } from './support/stats.ts';
import { Cleanups } from './support/cleanup.ts';

const here = dirname(fileURLToPath(import.meta.url));
const RESULTS_FILE = join(here, 'RESULTS-vm.md');

const { values: opts } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
    'quiet-wait': { type: 'string', default: '120' },
    'no-results-file': { type: 'boolean', default: false },
    'no-arm64': { type: 'boolean', default: false },
  },
  strict: true,
});
const RUNS = Number(opts.runs);
const WARMUP = Number(opts.warmup);
if (!Number.isSafeInteger(RUNS) || RUNS < 1) throw new Error(`--runs must be a positive integer, got ${opts.runs}`);
if (!Number.isSafeInteger(WARMUP) || WARMUP < 0) throw new Error(`--warmup must be a non-negative integer, got ${opts.warmup}`);
const ARM64 = !opts['no-arm64'];
const QUIET_WAIT_S = Number(opts['quiet-wait']);
if (!(QUIET_WAIT_S >= 0)) throw new Error(`--quiet-wait must be a number of seconds, got ${opts['quiet-wait']}`);

function progress(text: string): void {
  process.stderr.write(`bench:vm: ${text}\n`);
}

// ---------------------------------------------------------------------------
// cleanup on every exit path

const cleanups = new Cleanups(progress);
const withCleanup = <T>(cleanup: () => Promise<void>, body: () => Promise<T>): Promise<T> => cleanups.with(cleanup, body);

/** CPU time (ticks of 1/100 s) a process has used, or undefined when it is gone. */
function cpuTicks(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return undefined;
  }
}

/** Someone else's QEMUs that used more than 5% of a CPU during `sampleMs`. */
async function busyForeignQemus(sampleMs = 500): Promise<number[]> {
  const before = new Map(foreignQemuPids().map((pid) => [pid, cpuTicks(pid)]));
  await new Promise((r) => setTimeout(r, sampleMs));
  return [...before]
    .filter(([pid, t0]) => {
      const t1 = cpuTicks(pid);
      return t0 !== undefined && t1 !== undefined && t1 - t0 > (sampleMs / 10) * 0.05;
    })
    .map(([pid]) => pid);
}

/** Waits until no one else's QEMU uses CPU, up to `maxMs`. Returns how long it waited, or -1 if it gave up. */
async function waitForQuietCpu(maxMs: number): Promise<number> {
  const t0 = Date.now();
  while ((await busyForeignQemus()).length > 0) {
    if (Date.now() - t0 >= maxMs) return -1;
  }
  return Date.now() - t0;
}

/** Adds up the CPU time someone else's QEMUs use, sampled every 250 ms. */
class ForeignQemuCpu {
  #last = new Map<number, number>();
  #ticks = 0;
  #timer: NodeJS.Timeout | undefined;

  start(): void {
    this.#sample();
    this.#timer = setInterval(() => this.#sample(), 250);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /** Seconds of CPU used since the last call. */
  take(): number {
    this.#sample();
    const seconds = this.#ticks / 100;
    this.#ticks = 0;
    return seconds;
  }

  #sample(): void {
    const now = new Map<number, number>();
    for (const pid of foreignQemuPids()) {
      const t = cpuTicks(pid);
      if (t === undefined) continue;
      now.set(pid, t);
      const before = this.#last.get(pid);
      if (before !== undefined) this.#ticks += t - before;
    }
    this.#last = now;
  }
}

/** Until `runner`'s pool has a VM booted and waiting (untimed: the pool boots in the background). */
async function warmVmWaiting(runner: QemuVmRunner, maxSeconds = 120): Promise<void> {
  const deadline = Date.now() + maxSeconds * 1000;
  while (!runner.warmVms().some((v) => v.ready)) {
    if (Date.now() > deadline) throw new Error(`no warm VM became ready within ${maxSeconds} s`);
    await new Promise((r) => setTimeout(r, 50));
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
  vmPooled: number[];
  vmPooledWithDispose: number[];
  buildPooled: number[];
  buildPooledVmStep: number[];
  /** 1-minute load average at the start of each timed round. */
  load: number[];
  buildah: number[];
  buildahFrom: number[];
  buildahRun: number[];
  buildahCommit: number[];
  buildahRm: number[];
  arm64Build: number[];
  arm64VmStep: number[];
  arm64BuildPooled: number[];
  arm64VmStepPooled: number[];
  buildahArm64: number[];
  buildahArm64From: number[];
  buildahArm64Run: number[];
  buildahArm64Commit: number[];
}

/** An arm64 boot under TCG takes tens of seconds on a busy machine; a warm one may take a few minutes to be ready. */
const ARM64_WARM_WAIT_S = 600;

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
    // Debug records: each step's 'VM step ended' says whether a warm VM ran it.
    const pooledLog = recordingLogger('debug');
    const vmPooled = new QemuVmRunner({ logger: pooledLog.logger, poolSize: 1 });
    cleanups.add(() => vmPooled.close());
    let pooledFallbacks = 0;
    const expectPooled = (from: number): void => {
      const ended = pooledLog.lines
        .slice(from)
        .filter((l) => l.includes('"VM step ended"'))
        .pop();
      if (!ended?.includes('"pooled":true')) pooledFallbacks++;
    };
    // arm64: its own base (an arm64 busybox-static root), runners for linux/arm64 (the assets are
    // built on first use when not cached), and qemu-user for buildah.
    let arm64Side: Arm64Setup | undefined;
    if (ARM64) {
      const busybox = await arm64Busybox(work);
      progress(`arm64 busybox-static from ${busybox.deb}`);
      const tar = await busyboxRootTar(work, busybox.path, 'busybox-root-arm64');
      const armBase = await buildBase(join(work, 'base-store-arm64'), tar, 'arm64');
      progress(`arm64 base image ${armBase.result.imageId}`);
      const qemuUser = await ensureQemuUserAarch64();
      progress(qemuUser.ok ? `qemu-user: ${qemuUser.detail}` : `qemu-user not available, buildah arm64 not measured: ${qemuUser.detail}`);
      const cold = new QemuVmRunner({ logger, platform: arm64 });
      const pooled = new QemuVmRunner({ logger: pooledLog.logger, poolSize: 1, platform: arm64 });
      cleanups.add(() => pooled.close());
      arm64Side = { tar, baseArchive: armBase.archivePath, qemuUser, cold, pooled };
    }
    // Our own warm VMs boot in the background; no side starts before they are up and idle, so a
    // boot (arm64's takes tens of seconds of a core) does not run beside someone's timed side.
    const settle = async (): Promise<void> => {
      await warmVmWaiting(vmPooled);
      if (arm64Side) await warmVmWaiting(arm64Side.pooled, ARM64_WARM_WAIT_S);
    };
    const watcher = new QemuWatcher();
    watcher.start();
    const foreignCpu = new ForeignQemuCpu();
    foreignCpu.start();
    const loadBefore = loadavg()
      .map((l) => l.toFixed(2))
      .join(' ');

    const s: Samples = {
      vm: [],
      vmWithDispose: [],
      build: [],
      buildBeforeVm: [],
      buildVmStep: [],
      buildAfterVm: [],
      vmPooled: [],
      vmPooledWithDispose: [],
      buildPooled: [],
      buildPooledVmStep: [],
      load: [],
      buildah: [],
      buildahFrom: [],
      buildahRun: [],
      buildahCommit: [],
      buildahRm: [],
      arm64Build: [],
      arm64VmStep: [],
      arm64BuildPooled: [],
      arm64VmStepPooled: [],
      buildahArm64: [],
      buildahArm64From: [],
      buildahArm64Run: [],
      buildahArm64Commit: [],
    };
    const total = WARMUP + RUNS;
    let disturbedRounds = 0;
    for (let round = 0; round < total; round++) {
      const timed = round >= WARMUP;
      const label = timed ? `run ${round - WARMUP + 1}/${RUNS}` : `warm-up ${round + 1}/${WARMUP}`;

      const quiet = async (): Promise<void> => {
        await settle();
        const waited = await waitForQuietCpu(QUIET_WAIT_S * 1000);
        if (waited < 0) progress(`${label}: other QEMU processes still busy after ${QUIET_WAIT_S} s; going on`);
        else if (waited >= 750) progress(`${label}: waited ${(waited / 1000).toFixed(1)} s for other QEMU processes to go idle`);
      };
      foreignCpu.take();
      if (timed) s.load.push(loadavg()[0] ?? 0);

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
        return `cold: vm ${fmtMs(v.ms)} ms (+dispose ${fmtMs(v.withDisposeMs)}), build ${fmtMs(b.ms)} ms (vm step ${fmtMs(b.vmStepMs)})`;
      };
      const pooledSide = async (): Promise<string> => {
        await quiet();
        await warmVmWaiting(vmPooled);
        let from = pooledLog.lines.length;
        const v = await timedVmOverhead(vmPooled);
        if (timed) expectPooled(from);
        await warmVmWaiting(vmPooled);
        const dir = await mkdtemp(join(work, 'build-'));
        from = pooledLog.lines.length;
        const b = await withCleanup(
          () => rm(dir, { recursive: true, force: true }),
          async () => {
            const r = await timedBalerBuild(dir, busyboxTar, vmPooled);
            await checkChange(r.archivePath, 'baler (pooled)');
            return r;
          },
        );
        if (timed) {
          expectPooled(from);
          s.vmPooled.push(v.ms);
          s.vmPooledWithDispose.push(v.withDisposeMs);
          s.buildPooled.push(b.ms);
          s.buildPooledVmStep.push(b.vmStepMs);
        }
        return `pooled: vm ${fmtMs(v.ms)} ms, build ${fmtMs(b.ms)} ms (vm step ${fmtMs(b.vmStepMs)})`;
      };
      const peerSide = async (): Promise<string> => {
        await quiet();
        const r = await withPrivateBuildah(cleanups, tmpBase, async (bh) => {
          const out = await timedBuildahBuild(bh, base.archivePath, CHANGE_SCRIPT, join(bh.root, 'out.tar'));
          await checkChange(out.archivePath, 'buildah');
          return out;
        });
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

      const arm64Sides = arm64Side ? arm64SidesOf(arm64Side, { label, timed, quiet, expectPooled, poolLogLength: () => pooledLog.lines.length }, s, work, tmpBase) : [];

      // Rotate who goes first, so slow drift of the machine does not favour one side.
      const sides = [balerSide, pooledSide, peerSide, ...arm64Sides];
      const parts: string[] = [];
      for (let k = 0; k < sides.length; k++) {
        const i = (round + k) % sides.length;
        parts[i] = await (sides[i] as () => Promise<string>)();
      }
      // More than a fifth of a CPU-second of someone else's QEMU during the round disturbs it.
      const foreignSeconds = foreignCpu.take();
      const disturbed = foreignSeconds > 0.2;
      if (disturbed && timed) disturbedRounds++;
      progress(`${label}: ${parts.join('; ')}${disturbed ? ` [other QEMUs used ${foreignSeconds.toFixed(1)} CPU-s meanwhile]` : ''}`);
    }
    watcher.stop();
    foreignCpu.stop();
    await vmPooled.close();
    await arm64Side?.pooled.close();
    if (pooledFallbacks > 0) progress(`warning: ${pooledFallbacks} timed pooled step(s) did not run in a warm VM`);

    const accel = accelerator(watcher, lines);
    const perRound = summarize(s.load);
    const load =
      `load average ${loadBefore} before, ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')} after; ` +
      `1-min load at the start of each timed round: median ${perRound.median.toFixed(2)}, min ${perRound.min.toFixed(2)}, max ${perRound.max.toFixed(2)} (${machine.nproc} CPUs); ` +
      `timed rounds in which someone else's QEMUs used > 0.2 CPU-s: ${disturbedRounds} of ${RUNS}; pooled steps that fell back to a cold boot: ${pooledFallbacks}`;
    if (disturbedRounds > 0) progress(`warning: someone else's QEMUs took CPU during ${disturbedRounds} timed round(s); those timings are disturbed`);
    const report = renderReport(machine, accel, load, s, arm64Side?.qemuUser);
    process.stdout.write(`${report.text}\n${report.finalLine}\n`);
    if (!opts['no-results-file']) {
      await writeFile(RESULTS_FILE, report.markdown);
      progress(`results written to ${RESULTS_FILE}`);
    }
  });
}

interface Arm64Setup {
  /** The arm64 busybox root's tar (the base's contents). */
  tar: string;
  /** baler's arm64 base build's docker-archive: buildah's input. */
  baseArchive: string;
  qemuUser: QemuUser;
  cold: QemuVmRunner;
  pooled: QemuVmRunner;
}

interface RoundContext {
  label: string;
  timed: boolean;
  quiet: () => Promise<void>;
  expectPooled: (from: number) => void;
  poolLogLength: () => number;
}

/** The arm64 sides of one round: baler cold, baler pooled, buildah under qemu-user (when it runs here). */
function arm64SidesOf(a: Arm64Setup, r: RoundContext, s: Samples, work: string, tmpBase: string): Array<() => Promise<string>> {
  const balerBuild = async (vm: QemuVmRunner, who: string) => {
    const dir = await mkdtemp(join(work, 'build-arm64-'));
    return withCleanup(
      () => rm(dir, { recursive: true, force: true }),
      async () => {
        const b = await timedBalerBuild(dir, a.tar, vm, 'arm64');
        await checkChange(b.archivePath, who);
        await checkArchitecture(b.archivePath, 'arm64', who);
        return b;
      },
    );
  };
  const cold = async (): Promise<string> => {
    await r.quiet();
    const b = await balerBuild(a.cold, 'baler arm64');
    if (r.timed) {
      s.arm64Build.push(b.ms);
      s.arm64VmStep.push(b.vmStepMs);
    }
    return `arm64 cold: build ${fmtMs(b.ms)} ms (vm step ${fmtMs(b.vmStepMs)})`;
  };
  const pooled = async (): Promise<string> => {
    await r.quiet();
    const from = r.poolLogLength();
    const b = await balerBuild(a.pooled, 'baler arm64 (pooled)');
    if (r.timed) {
      r.expectPooled(from);
      s.arm64BuildPooled.push(b.ms);
      s.arm64VmStepPooled.push(b.vmStepMs);
    }
    return `arm64 pooled: build ${fmtMs(b.ms)} ms (vm step ${fmtMs(b.vmStepMs)})`;
  };
  const peer = async (): Promise<string> => {
    await r.quiet();
    const out = await withPrivateBuildah(cleanups, tmpBase, async (bh) => {
      const o = await timedBuildahBuild(bh, a.baseArchive, CHANGE_SCRIPT, join(bh.root, 'out.tar'), 'arm64');
      await checkChange(o.archivePath, 'buildah arm64');
      await checkArchitecture(o.archivePath, 'arm64', 'buildah arm64');
      return o;
    });
    if (r.timed) {
      s.buildahArm64.push(out.ms);
      s.buildahArm64From.push(out.phases.from);
      s.buildahArm64Run.push(out.phases.run);
      s.buildahArm64Commit.push(out.phases.commit);
    }
    const p = out.phases;
    return `buildah arm64 ${fmtMs(out.ms)} ms (from ${fmtMs(p.from)}, run ${fmtMs(p.run)}, commit ${fmtMs(p.commit)})`;
  };
  return a.qemuUser.ok ? [cold, pooled, peer] : [cold, pooled];
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

/** The arm64 rows of the times table (none with --no-arm64). */
function arm64Rows(row: (what: string, samples: number[]) => string[], s: Samples, qemuUser: QemuUser | undefined): string[][] {
  if (!qemuUser) return [];
  const rows = [
    row('4. baler whole build, arm64 cold (VM under TCG) → archive stored', s.arm64Build),
    row('   … VM step (qemu-system-aarch64, TCG)', s.arm64VmStep),
    row('4p. baler whole build, arm64 pooled (warm arm64 VM waiting)', s.arm64BuildPooled),
    row('   … VM step (inputs into the warm VM, go, upper tar stored, dispose, upper → tree)', s.arm64VmStepPooled),
  ];
  if (!qemuUser.ok) return [...rows, ['5. buildah arm64 (qemu-user): not measurable here', '0', '-', '-', '-', qemuUser.detail]];
  return [
    ...rows,
    row('5. buildah arm64: from --arch arm64 + run (qemu-user) + commit + rm', s.buildahArm64),
    row('   … buildah from --arch arm64 docker-archive:', s.buildahArm64From),
    row('   … buildah run --runtime runc (sh under qemu-aarch64-static)', s.buildahArm64Run),
    row('   … buildah commit docker-archive:', s.buildahArm64Commit),
  ];
}

function renderReport(m: Machine, accel: string, load: string, s: Samples, qemuUser: QemuUser | undefined): Report {
  const row = (what: string, samples: number[]): string[] => {
    const x = summarize(samples);
    return [what, String(x.n), fmtMs(x.median), fmtMs(x.min), fmtMs(x.max), fmtMs(x.mean)];
  };
  const vm = summarize(s.vm);
  const vmPooled = summarize(s.vmPooled);
  const build = summarize(s.build);
  const buildPooled = summarize(s.buildPooled);
  const buildah = summarize(s.buildah);
  const buildahRun = summarize(s.buildahRun);
  const vmStep = summarize(s.buildVmStep);
  const vmStepPooled = summarize(s.buildPooledVmStep);
  const ratio = (a: Summary, b: Summary): string => fmtRatio(a.median / b.median);

  const times = markdownTable(
    ['measurement', 'runs', 'median ms', 'min ms', 'max ms', 'mean ms'],
    [
      row('1. baler VM overhead, cold: QemuVmRunner.run(`true`), no lowers → upper tar read', s.vm),
      row('   … the same, until dispose() returned', s.vmWithDispose),
      row('1p. baler VM overhead, pooled (warm VM waiting; timed from run() = hand-over)', s.vmPooled),
      row('   … the same, until dispose() returned', s.vmPooledWithDispose),
      row('2. baler whole build, cold: runBuild(fromImage + runAsRoot) → archive stored', s.build),
      row('   … before the VM step (base image, contents)', s.buildBeforeVm),
      row('   … VM step (inputs, QEMU, upper tar stored, dispose, upper → tree)', s.buildVmStep),
      row('   … after the VM step (layer, config, archive stored)', s.buildAfterVm),
      row('2p. baler whole build, pooled (warm VM waiting when runBuild() is called)', s.buildPooled),
      row('   … VM step (inputs into the warm VM, go, upper tar stored, dispose, upper → tree)', s.buildPooledVmStep),
      row('3. buildah from + run --runtime runc + commit + rm', s.buildah),
      row('   … buildah from docker-archive:', s.buildahFrom),
      row('   … buildah run --runtime runc', s.buildahRun),
      row('   … buildah commit docker-archive:', s.buildahCommit),
      row('   … buildah rm', s.buildahRm),
      ...arm64Rows(row, s, qemuUser),
    ],
    [false, true, true, true, true, true],
  );
  const ratios = markdownTable(
    ['ratio (of medians)', 'value'],
    [
      ['baler VM overhead: pooled / cold', ratio(vmPooled, vm)],
      ['baler whole build: pooled / cold', ratio(buildPooled, build)],
      ['baler whole build, cold / buildah (from+run+commit+rm)', ratio(build, buildah)],
      ['baler whole build, pooled / buildah (from+run+commit+rm)', ratio(buildPooled, buildah)],
      ['baler VM overhead, cold / buildah (from+run+commit+rm)', ratio(vm, buildah)],
      ['baler VM overhead, pooled / buildah (from+run+commit+rm)', ratio(vmPooled, buildah)],
      ['baler VM step in the build, cold / buildah run', ratio(vmStep, buildahRun)],
      ['baler VM step in the build, pooled / buildah run', ratio(vmStepPooled, buildahRun)],
      ...(qemuUser
        ? [
            ['arm64 VM step (TCG) / amd64 VM step, cold', ratio(summarize(s.arm64VmStep), vmStep)],
            ['arm64 VM step (TCG) / amd64 VM step, pooled', ratio(summarize(s.arm64VmStepPooled), vmStepPooled)],
            ['arm64 VM step, pooled / cold', ratio(summarize(s.arm64VmStepPooled), summarize(s.arm64VmStep))],
            ...(qemuUser.ok
              ? [
                  ['arm64 VM step (TCG), cold / buildah arm64 run (qemu-user)', ratio(summarize(s.arm64VmStep), summarize(s.buildahArm64Run))],
                  ['arm64 VM step (TCG), pooled / buildah arm64 run (qemu-user)', ratio(summarize(s.arm64VmStepPooled), summarize(s.buildahArm64Run))],
                  ['buildah run: arm64 (qemu-user) / amd64 (native)', ratio(summarize(s.buildahArm64Run), buildahRun)],
                ]
              : []),
          ]
        : []),
    ],
    [false, true],
  );
  const machineLines = [
    `machine: nproc=${m.nproc}, CPU "${m.cpuModel}", ${m.memGiB} GiB, Linux ${m.kernel}; vmx/svm: ${m.hardwareVirt ? 'yes' : 'no'}; /dev/kvm: ${m.devKvm ? 'present' : 'absent'}`,
    `accel used by QEMU: ${accel}${process.env.BALER_VM_ACCEL ? ` (BALER_VM_ACCEL=${process.env.BALER_VM_ACCEL})` : ''}`,
    `software: node ${m.node}; ${m.qemu}; ${m.buildah}; ${m.runc}`,
    `machine load: ${load}`,
    `runs: ${RUNS} timed per measurement after ${WARMUP} warm-up round(s); each round runs baler cold, baler pooled and buildah${qemuUser ? ', and the same for arm64,' : ''} rotating who goes first`,
    ...(qemuUser
      ? [
          `arm64 on this amd64 host is emulated: baler's VM step in qemu-system-aarch64 under TCG (the accel above), buildah's run under qemu-user (${qemuUser.ok ? qemuUser.detail : `not available: ${qemuUser.detail}`})`,
        ]
      : []),
    "pooled: a QemuVmRunner with poolSize 1 (the worker default, BALER_VM_POOL=1); before each pooled measurement the bench waits, untimed, until a warm VM is booted and waiting, so a pooled timing starts when the job is handed over; the replacement VM boots during the timed step (as in the service); before every other side too the bench waits until its own warm VMs are up and idle, so none of its boots runs beside another side's timing",
  ];
  const finalLine =
    `bench:vm: vm_overhead_ms=${fmtMs(vm.median)} vm_overhead_pooled_ms=${fmtMs(vmPooled.median)} build_ms=${fmtMs(build.median)} ` +
    `build_pooled_ms=${fmtMs(buildPooled.median)} buildah_ms=${fmtMs(buildah.median)} ratio=${(build.median / buildah.median).toFixed(2)} ` +
    `ratio_pooled=${(buildPooled.median / buildah.median).toFixed(2)}` +
    (qemuUser
      ? ` arm64_vm_step_ms=${fmtMs(summarize(s.arm64VmStep).median)} arm64_vm_step_pooled_ms=${fmtMs(summarize(s.arm64VmStepPooled).median)}` +
        ` buildah_arm64_run_ms=${qemuUser.ok ? fmtMs(summarize(s.buildahArm64Run).median) : 'n/a'}`
      : '');
  const text = [...machineLines, '', times, '', ratios].join('\n');

  const command = `node --import tsx bench/vm.ts --runs ${RUNS} --warmup ${WARMUP}${QUIET_WAIT_S !== 120 ? ` --quiet-wait ${QUIET_WAIT_S}` : ''}${ARM64 ? '' : ' --no-arm64'}`;
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
    'baler: a fresh FsBlobStore per run (the base build is stored there first, untimed), `compression: none`;',
    'cold: every step boots its own VM; pooled: the step runs in a warm VM booted earlier (untimed), which is then',
    "thrown away like a cold one (the job's inputs are written into disk files attached at boot, then the guest is",
    'told to go over its serial port: src/vm/warm-vm.ts). Both give the same bytes (test/vm/vm-pool.test.ts).',
    'buildah: a fresh private storage root per run (vfs; created and removed untimed), `--network none`,',
    'runc with a private state dir; every step is a separate `buildah` process, as a user would run it:',
    '',
    '```sh',
    ...describeBuildahCommands(),
    '```',
    '',
    ...(qemuUser
      ? [
          'arm64 rows (4, 4p, 5): the same change for linux/arm64 on this amd64 host. baler: the base is a pure build of',
          "Debian's arm64 busybox-static (`architecture: arm64`), the change a `runAsRoot` build for arm64 whose VM step",
          'boots qemu-system-aarch64 (virt, `-cpu max,pauth-impdef=on`) under TCG: every guest instruction is translated.',
          "buildah: the same commands on baler's arm64 base archive, with `from --arch arm64`; its `run` starts the arm64",
          '`sh` in runc, which the kernel hands to qemu-aarch64-static (binfmt_misc, flags F: no qemu inside the container),',
          'so only the script is emulated (user mode), not a kernel. `buildah build --platform linux/arm64` runs the same way.',
          '',
        ]
      : []),
    times,
    '',
    ratios,
    '',
    '```',
    finalLine,
    '```',
    '',
    'Reading it: a pooled step still pays for everything after the hand-over: the inputs written into the warm',
    "VM's disk files, the guest's step (job tar, cgroups, scratch mount, the scripts in their namespaces, GNU tar",
    'of the layer), the VM shutting down and the result read. What moved out of the step is the boot: ~1.7 s of a',
    'core under TCG, now done ahead in the background (at nice 10, raised back when the VM is taken, so a boot',
    'for the next job takes little from the job running now).',
    '',
    'Reading it: `buildah commit` with the vfs driver computes the layer by walking the container',
    "tree (containers/storage's naive diff) and then waits for the wall clock to reach the next whole",
    'second (seen with strace: an idle wait of up to ~0.9 s ending just after the second boundary), so',
    'commit takes anything from ~0.1 to ~1.1 s depending on the clock phase, and the buildah median over',
    'few runs moves with it: compare the mean and min/max. On a shared machine, load from',
    'other jobs moves everything; the machine-load line gives the load average per round and how many rounds',
    "someone else's QEMUs took CPU in (idle ones, such as another service's warm VM, are not counted).",
    '',
  ].join('\n');
  return { text, markdown, finalLine };
}

main().catch(async (err: unknown) => {
  await cleanups.runAll();
  process.stderr.write(`bench:vm failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
