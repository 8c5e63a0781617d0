/**
 * linux/arm64 steps in an AArch64 microVM (qemu-system-aarch64 -M virt; TCG on an amd64 host):
 * the guest is an arm64 one (uname -m), what the scripts change comes back as on amd64, every
 * limit ends the VM with the reason amd64 gives, and a warm VM (its hand-over on the virtio
 * console) gives the bytes a cold boot gives. Few tests: each boots an emulated VM (about 10 s
 * each under TCG on an idle 2-core host); qemu-vm-runner.test.ts and vm-pool.test.ts cover the
 * rest on amd64, which runs the same guest init.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { arm64 } from '../../src/vm/platforms/arm64.ts';
import { QemuVmRunner } from '../../src/vm/qemu-vm-runner.ts';
import type { VmJob, VmResult } from '../../src/vm/vm-runner.ts';
import { until } from '../support/wait.ts';
import { CAP, job, makeLowerTar, makeUpperTar, processesMentioning, readAll, readTar } from './support.ts';

let work: string;
let coldTmp: string;
let runner: QemuVmRunner;
let lowerTar: string;
let upperTar: string;
const open: VmResult[] = [];
const records: Array<Record<string, unknown>> = [];
/** The cold run's upper tar, which the warm run must give again. */
let coldTarSha: string | undefined;

async function runOn(on: QemuVmRunner, j: VmJob): Promise<{ result: VmResult; log: string; seconds: number }> {
  let log = '';
  const t0 = Date.now();
  const result = await on.run({ ...j, onLog: (t) => (log += t) });
  open.push(result);
  return { result, log, seconds: (Date.now() - t0) / 1000 };
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'baler-test-vm-arm64-'));
  coldTmp = join(work, 'cold-tmp');
  await mkdir(coldTmp);
  runner = new QemuVmRunner({ platform: arm64, tmpDir: coldTmp });
  await runner.assets(); // the arm64 packages and kernel, downloaded once into the cache
  lowerTar = await makeLowerTar(work);
  upperTar = await makeUpperTar(work);
}, 300_000);

afterEach(async () => {
  while (open.length) await open.pop()?.dispose();
  expect(processesMentioning(coldTmp)).toEqual([]);
  expect(await readdir(coldTmp)).toEqual([]);
});

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

/** Changes over both lower layers and the contents; mtimes pinned, so two runs give the same bytes. */
const CHANGES: Pick<VmJob, 'runAsRoot' | 'extraCommands' | 'shadowSetup'> = {
  runAsRoot: [
    'echo "arch=$(uname -m)"',
    'test ! -e /etc/gone',
    'test "$(ls /opq)" = from1',
    'test "$(cat /etc/motd)" = hi',
    'echo written > /etc/new',
    'rm /etc/a',
    'mkdir /home/alice && chown 1000:1000 /home/alice',
    'cp /bin/prog /bin/capped && setcap cap_net_bind_service=+ep /bin/capped',
    'echo "getcap: $(getcap /bin/capped)"',
    'echo "links=$(ip -o link show | awk -F": " \'{print $2}\' | tr "\\n" " ")"',
    'ip route show | grep -q default && exit 10',
    'grep -q "^root:" /etc/passwd',
  ].join('\n'),
  extraCommands: ['echo extra > extra-file', 'find . -exec touch -h -d @1700000000 {} +'].join('\n'),
  shadowSetup: true,
};

function changesJob(): VmJob {
  return job({
    lowerTar: async () => createReadStream(lowerTar),
    lowerCount: 2,
    upperTar: async () => createReadStream(upperTar),
    ...CHANGES,
    limits: { diskMiB: 64, memoryMiB: 256, timeoutSeconds: 180 },
  });
}

// Emulated boots on a busy CI host take several times their idle time.
describe('a linux/arm64 VM step (TCG)', { timeout: 180_000 }, () => {
  it('runs the scripts on aarch64 and returns what they changed as an overlay-form upper tar', async () => {
    const { result, log, seconds } = await runOn(runner, changesJob());
    expect(result.outcome, log).toEqual({ ok: true });
    expect(log).toContain('arch=aarch64');
    expect(log).toContain('getcap: /bin/capped cap_net_bind_service=ep');
    expect(log).toMatch(/links=lo $/m);
    const bytes = await readAll(await result.openUpperTar());
    coldTarSha = createHash('sha256').update(bytes).digest('hex');
    const entries = await readTar(await result.openUpperTar());
    expect(entries.get('etc/new')?.data.toString()).toBe('written\n');
    expect(entries.get('etc/a')).toMatchObject({ type: 'character-device', devmajor: 0, devminor: 0 });
    expect(entries.get('home/alice')).toMatchObject({ type: 'directory', uid: 1000, gid: 1000 });
    expect(entries.get('bin/capped')?.xattrs.get('security.capability')).toEqual(CAP);
    expect(entries.get('usr/local/bin/capped')?.xattrs.get('security.capability')).toEqual(CAP);
    expect(entries.get('extra-file')?.data.toString()).toBe('extra\n');
    expect(entries.get('etc/passwd')?.data.toString()).toBe('root:x:0:0::/root:/bin/sh\n');
    for (const name of entries.keys()) expect(name).not.toMatch(/^(\.baler|proc|dev|sys)(\/|$)/);
    process.stderr.write(`[arm64] cold step over two lower layers: ${seconds.toFixed(1)} s\n`);
  });

  it('fails with "disk full" when a script writes past diskSize', async () => {
    const { result, log } = await runOn(runner, job({ runAsRoot: 'dd if=/dev/zero of=/big bs=1M count=64', limits: { diskMiB: 16, memoryMiB: 256, timeoutSeconds: 120 } }));
    expect(result.outcome.ok, log).toBe(false);
    expect(!result.outcome.ok && result.outcome.reason).toMatch(/^disk full\b/);
  });

  it('fails with "out of memory" when a script allocates past memorySize', async () => {
    const { result, log } = await runOn(runner, job({ runAsRoot: 'dd if=/dev/zero of=/dev/null bs=300M count=1\necho survived', limits: { diskMiB: 64, memoryMiB: 192, timeoutSeconds: 120 } }));
    expect(result.outcome.ok, log).toBe(false);
    expect(!result.outcome.ok && result.outcome.reason).toMatch(/^out of memory\b/);
    expect(log).not.toContain('survived');
  });

  it('ends a fork bomb', async () => {
    const { result, log } = await runOn(runner, job({ runAsRoot: 'bomb() { bomb | bomb & }\nbomb\nsleep 600', limits: { diskMiB: 64, memoryMiB: 256, timeoutSeconds: 150 } }));
    expect(result.outcome.ok, log.slice(-2000)).toBe(false);
    expect(!result.outcome.ok && result.outcome.reason).toMatch(/^(too many processes|out of memory)\b/);
  });

  it('kills the VM at the timeout', async () => {
    const { result, seconds } = await runOn(runner, job({ runAsRoot: 'echo sleeping; sleep 600', limits: { diskMiB: 64, memoryMiB: 256, timeoutSeconds: 15 } }));
    expect(result.outcome).toEqual({ ok: false, reason: 'timed out after 15 s' });
    expect(seconds).toBeGreaterThanOrEqual(15);
    expect(seconds).toBeLessThan(15 + 5);
  });

  it('runs in a warm VM (handed over on the virtio console) with the bytes of a cold boot', async () => {
    const poolTmp = join(work, 'pool-tmp');
    await mkdir(poolTmp);
    const logger = pino({ level: 'debug' }, { write: (line: string) => void records.push(JSON.parse(line) as Record<string, unknown>) });
    const pooled = new QemuVmRunner({ platform: arm64, tmpDir: poolTmp, poolSize: 1, poolLimits: { memoryMiB: 256, diskMiB: 64 }, logger });
    try {
      await until(() => pooled.warmVms().some((v) => v.ready), 240_000);
      const t0 = Date.now();
      const { result, log } = await runOn(pooled, changesJob());
      expect(result.outcome, log).toEqual({ ok: true });
      expect(records.filter((r) => r.msg === 'VM step ended').pop()?.pooled).toBe(true);
      expect(log).toContain('arch=aarch64');
      const sha = createHash('sha256')
        .update(await readAll(await result.openUpperTar()))
        .digest('hex');
      expect(sha).toBe(coldTarSha);
      process.stderr.write(`[arm64] warm step over two lower layers: ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
    } finally {
      await pooled.close();
    }
    expect(processesMentioning(poolTmp)).toEqual([]);
    expect(await readdir(poolTmp)).toEqual([]);
  }, 300_000);
});
