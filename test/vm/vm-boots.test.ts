/**
 * VM boots as the worker counts them (baler_vm_boots_total, baler_vm_boot_failures_total): by
 * kind and by the platform of the runner that booted them. Runners of both platforms over a fake
 * "QEMU" (a script that exits at once, or is missing): no VM runs here.
 */
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countVmBoots, createWorkerMetrics, zeroVmBoots } from '../../src/metrics/worker-metrics.ts';
import { amd64 } from '../../src/vm/platforms/amd64.ts';
import { arm64 } from '../../src/vm/platforms/arm64.ts';
import type { VmPlatform } from '../../src/vm/platform.ts';
import { QemuVmRunner } from '../../src/vm/qemu-vm-runner.ts';
import { job } from './support.ts';

let work: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'baler-test-vm-boots-'));
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** A cold runner of `platform` whose "QEMU" is `binary`. */
function fakeRunner(platform: VmPlatform, binary: string, boots: ReturnType<typeof countVmBoots>): QemuVmRunner {
  const assets = { dir: work, kernel: join(work, 'vmlinux'), initrd: join(work, 'initrd'), manifest: join(work, 'manifest.json') };
  return new QemuVmRunner({ platform, tmpDir: work, qemuBinary: binary, accel: 'tcg', assets, poolSize: 0, boots });
}

/** `name`'s samples as `kind platform value` lines, sorted. */
async function samples(metrics: ReturnType<typeof createWorkerMetrics>, name: string): Promise<string[]> {
  const metric = await metrics.registry.getSingleMetric(name)?.get();
  return (metric?.values ?? []).map((v) => `${v.labels.kind} ${v.labels.platform} ${v.value}`).sort();
}

describe('VM boot metrics', () => {
  it('count boots and failures by kind and by the platform of the runner', async () => {
    const exits = join(work, 'fake-qemu-exits');
    await writeFile(exits, '#!/bin/sh\nexit 0\n');
    await chmod(exits, 0o755);
    const metrics = createWorkerMetrics();
    zeroVmBoots(metrics, ['linux/amd64', 'linux/arm64']);
    const boots = countVmBoots(metrics);

    // Starts, then stops without a result: a boot, not a failed one.
    const arm = fakeRunner(arm64, exits, boots);
    const result = await arm.run(job({ runAsRoot: 'true', platform: 'linux/arm64' }));
    expect(result.outcome.ok).toBe(false);
    await result.dispose();
    // QEMU cannot be started at all: a boot that failed.
    const amd = fakeRunner(amd64, join(work, 'no-such-qemu'), boots);
    await expect(amd.run(job({ runAsRoot: 'true' }))).rejects.toThrow();
    await Promise.all([arm.close(), amd.close()]);

    expect(await samples(metrics, 'baler_vm_boots_total')).toEqual(['cold linux/amd64 1', 'cold linux/arm64 1', 'warm linux/amd64 0', 'warm linux/arm64 0']);
    expect(await samples(metrics, 'baler_vm_boot_failures_total')).toEqual(['cold linux/amd64 1', 'cold linux/arm64 0', 'warm linux/amd64 0', 'warm linux/arm64 0']);
  });
});
