/**
 * QemuVmRunner with a pool of warm VMs, against real QEMU (TCG here): a pooled job gives the
 * bytes a cold boot gives, runs in a VM of its own, hits its limits by name and is cancelled
 * like a cold one; VMs that die or misbehave while waiting are replaced and never given a job;
 * close() leaves nothing behind. One pooled runner serves most tests (its pool refills between
 * them); after each, its temp dir holds exactly the pool's waiting VMs. A worker process that
 * dies takes its warm VMs with it, and sweepStaleTempDirs() removes their files.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { VM_DEFAULTS } from '../../src/builds/spec.ts';
import { POOL_DEFAULT_LIMITS, QemuVmRunner } from '../../src/vm/qemu-vm-runner.ts';
import { VmCancelledError, type VmJob, type VmResult } from '../../src/vm/vm-runner.ts';
import { until } from '../support/wait.ts';
import { CLOCK, job, makeLowerTar, makeUpperTar, pidsOf, processesMentioning, readAll, readTar } from './support.ts';

/** The pooled runner's VMs: the limits job() asks for by default. */
const POOL = { memoryMiB: 256, diskMiB: 64 };

let work: string;
let lowerTar: string;
let upperTar: string;
let cold: QemuVmRunner;
let pooled: QemuVmRunner;
let poolTmp: string;
const records: Array<Record<string, unknown>> = [];
const open: VmResult[] = [];

function recordingLogger(into: Array<Record<string, unknown>>) {
  return pino({ level: 'debug' }, { write: (line: string) => void into.push(JSON.parse(line) as Record<string, unknown>) });
}

interface Ran {
  result: VmResult;
  log: string;
  seconds: number;
  /** From the runner's 'VM step ended' record: whether a warm VM ran it. */
  pooled: boolean | undefined;
}

async function runOn(runner: QemuVmRunner, j: VmJob): Promise<Ran> {
  let log = '';
  const from = records.length;
  const t0 = Date.now();
  const result = await runner.run({ ...j, onLog: (t) => (log += t) });
  const seconds = (Date.now() - t0) / 1000;
  open.push(result);
  const ended = records
    .slice(from)
    .filter((r) => r.msg === 'VM step ended')
    .pop();
  return { result, log, seconds, pooled: ended?.pooled as boolean | undefined };
}

/** Until `runner`'s pool has `n` VMs ready. */
async function warm(runner: QemuVmRunner, n = 1): Promise<void> {
  await until(() => runner.warmVms().filter((v) => v.ready).length >= n, 120_000);
}

/** `tmp` holds the pool's waiting VMs and nothing else; no other QEMU runs for it. */
function expectOnlyPool(runner: QemuVmRunner, tmp: string, names: string[]): void {
  const vms = runner.warmVms();
  expect(names.sort()).toEqual(vms.map((v) => basename(v.dir)).sort());
  expect(pidsOf(processesMentioning(tmp))).toEqual(vms.map((v) => v.pid).sort((a, b) => (a ?? 0) - (b ?? 0)));
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'baler-test-vm-pool-'));
  const coldTmp = join(work, 'cold-tmp');
  poolTmp = join(work, 'pool-tmp');
  await mkdir(coldTmp);
  await mkdir(poolTmp);
  cold = new QemuVmRunner({ tmpDir: coldTmp });
  await cold.assets();
  pooled = new QemuVmRunner({ tmpDir: poolTmp, poolSize: 1, poolLimits: POOL, logger: recordingLogger(records) });
  lowerTar = await makeLowerTar(work);
  upperTar = await makeUpperTar(work);
  await warm(pooled);
}, 240_000);

afterEach(async () => {
  while (open.length) await open.pop()?.dispose();
  await warm(pooled);
  expectOnlyPool(pooled, poolTmp, await readdir(poolTmp));
  expect(processesMentioning(join(work, 'cold-tmp'))).toEqual([]);
  expect(await readdir(join(work, 'cold-tmp'))).toEqual([]);
}, 180_000);

afterAll(async () => {
  await pooled?.close();
  if (poolTmp) {
    expect(processesMentioning(poolTmp)).toEqual([]);
    expect(await readdir(poolTmp)).toEqual([]);
  }
  if (work) await rm(work, { recursive: true, force: true });
});

/** extraCommands that pin every mtime in the layer, so that two runs can give the same bytes. */
const PIN_MTIMES = 'find . -exec touch -h -d @1700000000 {} +';

const CHANGES_OVER_LOWERS = [
  'test ! -e /etc/gone',
  'echo "opq: $(ls /opq)"',
  'cat /etc/motd',
  'echo written > /etc/new',
  'ln /etc/new /etc/new.hard',
  'setfattr -n user.note -v hello /etc/new',
  'rm /etc/a',
  'rm -rf /some/dir && mkdir /some/dir && touch /some/dir/new',
  'mkdir /home/alice && chown 1000:1000 /home/alice',
  'chmod 4755 /usr/bin/tool',
  'chmod 0750 /bin/prog',
  'cp /bin/prog /bin/capped && setcap cap_net_bind_service=+ep /bin/capped',
  'echo done',
].join('\n');

const CHANGES_WITHOUT_LOWERS = [
  'cat /etc/motd',
  'mkdir -p /var/lib/app && echo state > /var/lib/app/state && chown -R 1000:1000 /var/lib/app',
  'rm /etc/motd.link',
  'chmod 0600 /etc/motd',
  'echo done',
].join('\n');

describe('a pooled job', () => {
  it('has the limits of the build defaults unless told otherwise', () => {
    expect(POOL_DEFAULT_LIMITS).toEqual({ memoryMiB: VM_DEFAULTS.memorySize, diskMiB: VM_DEFAULTS.diskSize });
  });

  it.each([
    [
      'over lower layers, with contents',
      (): VmJob =>
        job({
          lowerTar: async () => createReadStream(lowerTar),
          lowerCount: 2,
          upperTar: async () => createReadStream(upperTar),
          runAsRoot: CHANGES_OVER_LOWERS,
          extraCommands: PIN_MTIMES,
          shadowSetup: true,
        }),
    ],
    ['without lower layers', (): VmJob => job({ upperTar: async () => createReadStream(upperTar), runAsRoot: CHANGES_WITHOUT_LOWERS, extraCommands: PIN_MTIMES })],
  ])('gives the same upper tar bytes and log as a cold boot: %s', async (_what, make) => {
    const c = await runOn(cold, make());
    expect(c.result.outcome, c.log).toEqual({ ok: true });
    await warm(pooled);
    const p = await runOn(pooled, make());
    expect(p.result.outcome, p.log).toEqual({ ok: true });
    expect(p.pooled).toBe(true);
    expect(p.log).toBe(c.log);
    expect(p.log).toContain('done');
    const coldBytes = await readAll(await c.result.openUpperTar());
    const pooledBytes = await readAll(await p.result.openUpperTar());
    // Entry by entry first (a readable difference), then the bytes.
    const [ce, pe] = [await readTar(await c.result.openUpperTar()), await readTar(await p.result.openUpperTar())];
    expect([...pe.entries()]).toEqual([...ce.entries()]);
    expect(ce.size).toBeGreaterThan(3);
    expect(sha256(pooledBytes)).toBe(sha256(coldBytes));
  });

  it("runs in a VM of its own: nothing of the job before is there, and the clock is the job's", async () => {
    const firstPid = pooled.warmVms()[0]?.pid;
    const first = await runOn(
      pooled,
      job({
        clock: CLOCK,
        runAsRoot: 'echo "clock=$(date +%s)"; echo one > /left-by-job-1',
        extraCommands: 'echo "boot=$(cat /proc/sys/kernel/random/boot_id)"; echo x > /run/left-by-job-1; echo x > /tmp/left-by-job-1',
      }),
    );
    expect(first.result.outcome, first.log).toEqual({ ok: true });
    expect(first.pooled).toBe(true);
    await warm(pooled);
    const secondPid = pooled.warmVms()[0]?.pid;
    expect(secondPid).not.toBe(firstPid);
    const laterClock = CLOCK + 365 * 86400;
    const second = await runOn(
      pooled,
      job({
        clock: laterClock,
        runAsRoot: 'echo "clock=$(date +%s)"; test ! -e /left-by-job-1',
        extraCommands: 'echo "boot=$(cat /proc/sys/kernel/random/boot_id)"; test ! -e /run/left-by-job-1; test ! -e /tmp/left-by-job-1; ls',
      }),
    );
    expect(second.result.outcome, second.log).toEqual({ ok: true });
    expect(second.pooled).toBe(true);
    const clockOf = (log: string): number => Number(/clock=(\d+)/.exec(log)?.[1]);
    expect(clockOf(first.log)).toBeGreaterThanOrEqual(CLOCK);
    expect(clockOf(first.log)).toBeLessThan(CLOCK + 30);
    expect(clockOf(second.log)).toBeGreaterThanOrEqual(laterClock);
    expect(clockOf(second.log)).toBeLessThan(laterClock + 30);
    const bootOf = (log: string): string | undefined => /boot=(\S+)/.exec(log)?.[1];
    expect(bootOf(first.log)).toBeTruthy();
    expect(bootOf(second.log)).not.toBe(bootOf(first.log));
    const entries = await readTar(await second.result.openUpperTar());
    expect([...entries.keys()].filter((n) => n.includes('left-by-job-1'))).toEqual([]);
  });

  it.each([
    [
      "disk full (a scratch disk smaller than the pool's)",
      job({ runAsRoot: 'dd if=/dev/zero of=/big bs=1M count=64', limits: { diskMiB: 16, memoryMiB: 256, timeoutSeconds: 60 } }),
      /^disk full\b/,
      30,
    ],
    ['out of memory', job({ runAsRoot: 'dd if=/dev/zero of=/dev/null bs=300M count=1\necho survived', limits: { diskMiB: 64, memoryMiB: 256, timeoutSeconds: 60 } }), /^out of memory\b/, 30],
    ['timed out after 8 s', job({ runAsRoot: 'echo sleeping; sleep 600', limits: { diskMiB: 64, memoryMiB: 256, timeoutSeconds: 8 } }), /^timed out after 8 s$/, 8 + 5],
    // The sleep keeps the script (PID 1 of its namespace) alive: its exit would end the bomb.
    ['too many processes', job({ runAsRoot: 'bomb() { bomb | bomb & }\nbomb\nsleep 600', limits: { diskMiB: 64, memoryMiB: 256, timeoutSeconds: 45 } }), /^(too many processes|out of memory)\b/, 30],
  ])('fails with its limit named: %s', async (what, j, reason, maxSeconds) => {
    const { result, log, seconds, pooled: wasPooled } = await runOn(pooled, j);
    expect(wasPooled).toBe(true);
    expect(result.outcome.ok, log.slice(-2000)).toBe(false);
    expect(!result.outcome.ok && result.outcome.reason).toMatch(reason);
    expect(log).not.toContain('survived');
    // The timeout counts from the hand-over: all of it, and not much more.
    if (what.startsWith('timed out')) expect(seconds).toBeGreaterThanOrEqual(8);
    expect(seconds).toBeLessThan(maxSeconds);
  });

  it('is cancelled by its AbortSignal: the VM is killed, its files removed, run() rejects', async () => {
    const vm = pooled.warmVms()[0];
    expect(vm?.ready).toBe(true);
    const controller = new AbortController();
    let log = '';
    const pending = pooled.run(job({ runAsRoot: 'echo started; sleep 600', onLog: (t) => (log += t), signal: controller.signal, limits: { diskMiB: 64, memoryMiB: 256, timeoutSeconds: 120 } }));
    await until(() => log.includes('started'), 30_000);
    const t0 = Date.now();
    controller.abort();
    await expect(pending).rejects.toBeInstanceOf(VmCancelledError);
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(processesMentioning(vm?.dir ?? '?')).toEqual([]);
    expect(existsSync(vm?.dir ?? '?')).toBe(false);
  });

  it.each([
    ["its limits are not the pool's (memory)", { diskMiB: 64, memoryMiB: 192, timeoutSeconds: 60 }],
    ["its limits are not the pool's (a larger disk)", { diskMiB: 128, memoryMiB: 256, timeoutSeconds: 60 }],
  ])('boots cold when %s', async (_what, limits) => {
    const r = await runOn(pooled, job({ runAsRoot: 'echo "mem=$(awk \'/MemTotal/ {print $2}\' /proc/meminfo)"; df -k / | tail -n 1', limits }));
    expect(r.result.outcome, r.log).toEqual({ ok: true });
    expect(r.pooled).toBe(false);
  });
});

describe('the pool', () => {
  it('replaces a warm VM killed while waiting (kill -9) and never gives it a job', async () => {
    const victim = pooled.warmVms()[0];
    expect(victim?.ready).toBe(true);
    process.kill(victim?.pid ?? -1, 'SIGKILL');
    // At once: the pool may not have heard of the death yet.
    const right = await runOn(pooled, job({ runAsRoot: 'echo alive' }));
    expect(right.result.outcome, right.log).toEqual({ ok: true });
    expect(right.log).toBe('alive\n');
    await until(() => !existsSync(victim?.dir ?? '?'), 30_000);
    await warm(pooled);
    expect(pooled.warmVms().map((v) => v.pid)).not.toContain(victim?.pid);
    // Killed again, and this time the pool notices first: the replacement takes the job.
    const second = pooled.warmVms()[0];
    process.kill(second?.pid ?? -1, 'SIGKILL');
    await until(() => !existsSync(second?.dir ?? '?'), 30_000);
    await warm(pooled);
    const after = await runOn(pooled, job({ runAsRoot: 'echo alive' }));
    expect(after.result.outcome, after.log).toEqual({ ok: true });
    expect(after.pooled).toBe(true);
    expect(records.some((r) => r.msg === 'VM pool: dropped a warm VM; booting another' && r.pid === second?.pid)).toBe(true);
  });

  it('runs the job cold when QEMU opened an input file while a job was rewriting it (a short disk)', async () => {
    const tmp = join(work, 'short-tmp');
    await mkdir(tmp);
    const seen: Array<Record<string, unknown>> = [];
    // As when a job takes a VM whose QEMU is just starting: upper.tar is empty (O_TRUNC) as QEMU
    // opens it, so the guest's upper disk has no sectors, and its contents would read as no tar.
    const runner = new QemuVmRunner({ tmpDir: tmp, poolSize: 1, poolLimits: POOL, logger: recordingLogger(seen), beforeWarmStart: (dir) => truncate(join(dir, 'upper.tar'), 0) });
    await warm(runner);
    const r = await runner.run(job({ runAsRoot: 'cat /etc/motd', upperTar: async () => createReadStream(upperTar) }));
    expect(r.outcome).toEqual({ ok: true });
    await r.dispose();
    const lost = seen.find((x) => x.msg === 'VM step: the warm VM was lost before it took the job; booting cold');
    expect(String(lost?.err)).toMatch(/shorter than its file.*baler-short vd[a-z] 0/);
    expect(seen.filter((x) => x.msg === 'VM step ended').map((x) => x.pooled)).toEqual([false]);
    await runner.close();
    expect(await readdir(tmp)).toEqual([]);
  });

  it('close() kills every waiting and booting VM and removes their files; later jobs boot cold', async () => {
    const tmp = join(work, 'close-tmp');
    await mkdir(tmp);
    const runner = new QemuVmRunner({ tmpDir: tmp, poolSize: 2, poolLimits: POOL });
    await warm(runner, 2);
    const r = await runner.run(job({ runAsRoot: 'true' }));
    expect(r.outcome).toEqual({ ok: true });
    await r.dispose();
    // One VM waits, its replacement boots.
    expect(runner.warmVms()).toHaveLength(2);
    await runner.close();
    expect(runner.warmVms()).toEqual([]);
    expect(processesMentioning(tmp)).toEqual([]);
    expect(await readdir(tmp)).toEqual([]);
    const later = await runner.run(job({ runAsRoot: 'true' }));
    expect(later.outcome).toEqual({ ok: true });
    await later.dispose();
    expect(processesMentioning(tmp)).toEqual([]);
    expect(await readdir(tmp)).toEqual([]);
  });
});

describe('a worker process with a pool', () => {
  /** A child node process owning a pooled runner in `tmp`; resolves once its warm VM is ready. */
  async function poolOwner(tmp: string): Promise<{ child: ChildProcess; qemuPid: number }> {
    const script = join(work, 'pool-owner.mts');
    await writeFile(
      script,
      [
        `import { QemuVmRunner } from ${JSON.stringify(join(process.cwd(), 'src/vm/qemu-vm-runner.ts'))};`,
        'const runner = new QemuVmRunner({ tmpDir: process.argv[2], poolSize: 1, poolLimits: { memoryMiB: 256, diskMiB: 16 } });',
        'while (!runner.warmVms().some((v) => v.ready)) await new Promise((r) => setTimeout(r, 50));',
        // biome-ignore lint/suspicious/noTemplateCurlyInString: a line of the child's script
        'console.log(`ready ${runner.warmVms()[0].pid}`);',
        // A line on stdin: exit without close(), as a crash that still runs exit hooks would.
        "process.stdin.once('data', () => process.exit(3));",
      ].join('\n'),
    );
    const child = spawn(process.execPath, ['--import', 'tsx', script, tmp], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    child.stdout?.on('data', (b: Buffer) => (out += b.toString()));
    await until(() => /ready \d+/.test(out), 120_000);
    return { child, qemuPid: Number(/ready (\d+)/.exec(out)?.[1]) };
  }

  it.each([
    ['is killed (kill -9)', (c: ChildProcess) => c.kill('SIGKILL')],
    ['exits without close()', (c: ChildProcess) => c.stdin?.write('exit\n')],
  ])('takes its warm VM with it when it %s; sweepStaleTempDirs() removes the files', async (_how, end) => {
    const tmp = await mkdtemp(join(work, 'owner-'));
    const { child, qemuPid } = await poolOwner(tmp);
    expect(pidsOf(processesMentioning(tmp))).toEqual([qemuPid]);
    expect(await readdir(tmp)).toHaveLength(1);
    const exited = new Promise((resolve) => child.once('exit', resolve));
    end(child);
    await until(() => processesMentioning(tmp).length === 0, 15_000);
    await exited; // reaped: its pid no longer shows (a zombie's would, to the sweep)
    expect(await QemuVmRunner.sweepStaleTempDirs(tmp)).toHaveLength(1);
    expect(await readdir(tmp)).toEqual([]);
  });
});

describe('the pool with a misbehaving QEMU (a fake: no VM at all)', () => {
  /** A runner whose "QEMU" is `script` (cold boots: the script exits at once). */
  async function fakeRunner(name: string, script: string, into: Array<Record<string, unknown>>): Promise<{ runner: QemuVmRunner; tmp: string }> {
    const dir = join(work, name);
    const tmp = join(dir, 'tmp');
    await mkdir(tmp, { recursive: true });
    const binary = join(dir, 'fake-qemu-system');
    await writeFile(binary, `#!/bin/bash\ncase "$*" in *baler.pool=1*) ;; *) exit 0 ;; esac\n${script}\n`);
    await chmod(binary, 0o755);
    const assets = { dir, kernel: join(dir, 'vmlinux'), initrd: join(dir, 'initrd'), manifest: join(dir, 'manifest.json') };
    const runner = new QemuVmRunner({ tmpDir: tmp, qemuBinary: binary, accel: 'tcg', assets, poolSize: 1, poolLimits: { memoryMiB: 256, diskMiB: 16 }, logger: recordingLogger(into) });
    return { runner, tmp };
  }

  it('drops a VM that talks while it should wait, and boots another', async () => {
    const seen: Array<Record<string, unknown>> = [];
    const { runner, tmp } = await fakeRunner('fake-junk', "printf 'baler-ready\\n'; sleep 0.3; printf 'junk\\n'; exec sleep 600", seen);
    await until(() => seen.filter((r) => r.msg === 'VM pool: dropped a warm VM; booting another').length >= 2, 30_000);
    expect(String(seen.find((r) => r.msg === 'VM pool: dropped a warm VM; booting another')?.problem)).toMatch(/unexpected output while waiting/);
    await runner.close();
    expect(await readdir(tmp)).toEqual([]);
  });

  it('runs the job cold when the VM does not answer go properly', async () => {
    const seen: Array<Record<string, unknown>> = [];
    const { runner, tmp } = await fakeRunner('fake-answer', "printf 'baler-ready\\n'; read -r line; printf 'nope\\n'; exec sleep 600", seen);
    await warm(runner);
    const r = await runner.run(job({ runAsRoot: 'true', limits: { diskMiB: 16, memoryMiB: 256, timeoutSeconds: 30 } }));
    // The cold "VM" (the fake again) exits at once without a result.
    expect(r.outcome).toEqual({ ok: false, reason: 'the VM stopped before the step finished' });
    await r.dispose();
    expect(String(seen.find((x) => x.msg === 'VM step: the warm VM was lost before it took the job; booting cold')?.err)).toMatch(/unexpected answer to go/);
    await runner.close();
    expect(await readdir(tmp)).toEqual([]);
  });
});
