/**
 * The host's disk filling up under a running VM step (another process takes the room after the
 * step was admitted): the step ends, failing, instead of QEMU pausing the VM on ENOSPC (its
 * default `werror=enospc`) and the worker waiting for the step's timeout. The VM's temp dir is a
 * small tmpfs the test mounts (root only; skipped otherwise), and the test fills it itself.
 * On linux/amd64 and linux/arm64 (issue 15; an AArch64 microVM under TCG): the drive options are
 * the same, but the guest kernel that meets the I/O error is the platform's.
 */
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { VmPlatform } from '../../src/vm/platform.ts';
import { amd64 } from '../../src/vm/platforms/amd64.ts';
import { arm64 } from '../../src/vm/platforms/arm64.ts';
import { QemuVmRunner } from '../../src/vm/qemu-vm-runner.ts';
import { job } from './support.ts';

const isRoot = process.getuid?.() === 0;
let work: string;
let vmTmp: string;
const runners = new Map<VmPlatform, QemuVmRunner>();

beforeAll(async () => {
  if (!isRoot) return;
  work = await mkdtemp(join(tmpdir(), 'baler-test-vm-hostfull-'));
  vmTmp = join(work, 'vm-tmp');
  await mkdir(vmTmp);
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=400m', 'tmpfs', vmTmp]);
  if (mounted.status !== 0) throw new Error(`mount tmpfs: ${mounted.stderr}`);
  for (const platform of [amd64, arm64]) {
    const runner = new QemuVmRunner({ platform, tmpDir: vmTmp, poolSize: 0 });
    await runner.assets();
    runners.set(platform, runner);
  }
}, 300_000);

afterAll(async () => {
  if (!isRoot || !work) return;
  for (const runner of runners.values()) await runner.close();
  spawnSync('umount', ['-l', vmTmp]);
  await rm(work, { recursive: true, force: true });
});

it.skipIf(!isRoot).each([amd64, arm64])(
  'fails the step soon when the host disk fills under it, never pausing the VM until its timeout ($name)',
  async (platform) => {
    const runner = runners.get(platform) as QemuVmRunner;
    const t0 = Date.now();
    let filled = false;
    let log = '';
    // Once the script is writing, another process takes what is left of the host's room.
    const run = runner.run({
      ...job({ limits: { diskMiB: 96, memoryMiB: 256, timeoutSeconds: 240 } }),
      runAsRoot: 'echo writing; dd if=/dev/zero of=/big bs=1M count=70 conv=fsync 2>&1; sync; echo wrote',
      onLog: (text) => {
        log += text;
        if (!filled && log.includes('writing')) {
          filled = true;
          spawnSync('sh', ['-c', `dd if=/dev/zero of=${join(vmTmp, 'filler')} bs=1M 2>/dev/null; true`]);
        }
      },
    });
    const result = await run;
    const seconds = (Date.now() - t0) / 1000;
    await result.dispose();
    await rm(join(vmTmp, 'filler'), { force: true });
    expect(filled, `${JSON.stringify(result.outcome)} ${log}`).toBe(true);
    expect(result.outcome.ok).toBe(false);
    process.stdout.write(`host disk full (${platform.name}): the step ended in ${seconds.toFixed(1)} s: ${JSON.stringify(result.outcome)}\n`);
    expect(seconds).toBeLessThan(120);
    expect((await readdir(vmTmp)).filter((n) => n !== 'filler')).toEqual([]);
  },
  300_000,
);
