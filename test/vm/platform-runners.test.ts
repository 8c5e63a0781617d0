/**
 * A worker's VM platforms: which it serves (BALER_VM_PLATFORMS, else its host's own and every
 * one whose QEMU is installed), a runner per platform, and each step on its platform's runner.
 * With linux/amd64 and a made-up second platform; no VM boots here.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import type { VmAssets } from '../../src/vm/assets/vm-assets.ts';
import type { VmPlatform } from '../../src/vm/platform.ts';
import { startPlatformRunners } from '../../src/vm/platform-runners.ts';
import { amd64 } from '../../src/vm/platforms/amd64.ts';
import { choosePlatforms, type HostView } from '../../src/vm/served-platforms.ts';
import { job } from './support.ts';

/** A second architecture, as arm64 is on an amd64 host: emulated, by its own QEMU. */
const other: VmPlatform = { ...amd64, name: 'linux/other', architecture: 'other', hostArch: 'arm64', qemu: { binary: 'qemu-system-other-missing' } };
const known = [amd64, other];
const host = (installed: string[], arch: NodeJS.Architecture = 'x64'): HostView => ({ arch, known, installed: (b) => installed.includes(b) });
const names = (ps: VmPlatform[]) => ps.map((p) => p.name);

describe('the platforms a worker serves', () => {
  it('by default: its host own, then every other whose QEMU is installed', () => {
    expect(names(choosePlatforms(undefined, host(['qemu-system-x86_64'])).platforms)).toEqual(['linux/amd64']);
    expect(choosePlatforms(undefined, host(['qemu-system-x86_64', 'qemu-system-other-missing']))).toEqual({ platforms: [amd64, other], configured: false });
    // On the other architecture's host: that one first (native), amd64 emulated.
    expect(names(choosePlatforms(undefined, host(['qemu-system-x86_64'], 'arm64')).platforms)).toEqual(['linux/other', 'linux/amd64']);
    // A host baler has no platform for, nothing installed: the default, as before platforms.
    expect(names(choosePlatforms(undefined, host([], 'riscv64')).platforms)).toEqual(['linux/amd64']);
  });

  it('BALER_VM_PLATFORMS is a comma-separated list; unset or empty, the default', () => {
    expect(loadConfig({ BALER_VM_PLATFORMS: ' linux/amd64, linux/arm64 ,' }).vmPlatforms).toEqual(['linux/amd64', 'linux/arm64']);
    expect(loadConfig({ BALER_VM_PLATFORMS: '' }).vmPlatforms).toBeUndefined();
    expect(loadConfig({}).vmPlatforms).toBeUndefined();
  });

  it('BALER_VM_PLATFORMS: the ones named, each known and with its QEMU installed, the host own first', () => {
    const both = host(['qemu-system-x86_64', 'qemu-system-other-missing']);
    expect(choosePlatforms(['linux/other', 'linux/amd64'], both)).toEqual({ platforms: [amd64, other], configured: true });
    expect(names(choosePlatforms(['linux/other'], both).platforms)).toEqual(['linux/other']);
    expect(() => choosePlatforms(['linux/riscv64'], both)).toThrow('BALER_VM_PLATFORMS names linux/riscv64; baler runs VMs of linux/amd64, linux/other');
    expect(() => choosePlatforms(['linux/other'], host(['qemu-system-x86_64']))).toThrow('BALER_VM_PLATFORMS names linux/other, but its emulator qemu-system-other-missing is not installed');
  });
});

describe('a runner per platform', () => {
  let vmTmp: string;
  const fakeAssets = (dir: string): VmAssets => ({ dir, kernel: join(dir, 'k'), initrd: join(dir, 'i'), manifest: join(dir, 'm') });
  beforeAll(async () => {
    vmTmp = await mkdtemp(join(tmpdir(), 'baler-test-platform-runners-'));
  });
  afterAll(async () => {
    await rm(vmTmp, { recursive: true, force: true });
  });

  it("runs each step on its platform's runner, and says so of a platform it does not serve", async () => {
    const runners = await startPlatformRunners({ platforms: [amd64, other], configured: true }, { tmpDir: vmTmp, accel: 'tcg', assets: async () => fakeAssets(vmTmp) });
    try {
      expect(names(runners.platforms)).toEqual(['linux/amd64', 'linux/other']);
      expect(await runners.served()).toEqual([
        { platform: 'linux/amd64', accel: 'tcg' },
        { platform: 'linux/other', accel: 'tcg' },
      ]);
      // The other platform's step starts that platform's QEMU (here one that is not installed).
      await expect(runners.run(job({ platform: 'linux/other', limits: { diskMiB: 16, memoryMiB: 128, timeoutSeconds: 10 } }))).rejects.toThrow(/qemu-system-other-missing/);
      await expect(runners.run(job({ platform: 'linux/riscv64' }))).rejects.toThrow('this worker runs no linux/riscv64 VMs (it runs linux/amd64, linux/other)');
    } finally {
      await runners.close();
    }
    expect((await readdir(vmTmp)).filter((f) => !['k', 'i', 'm'].includes(f))).toEqual([]);
  });

  it('drops an emulated platform chosen by default whose assets cannot be had; fails on one the operator named', async () => {
    const assets = async (p: VmPlatform) => {
      if (p === other) throw new Error('no kernel for other');
      return fakeAssets(vmTmp);
    };
    const warnings: string[] = [];
    const logger = { warn: (_: unknown, msg: string) => warnings.push(msg), info: () => {}, debug: () => {} } as never;
    const runners = await startPlatformRunners({ platforms: [amd64, other], configured: false }, { tmpDir: vmTmp, accel: 'tcg', assets, logger });
    expect(names(runners.platforms)).toEqual(['linux/amd64']);
    expect(warnings).toEqual(['not serving linux/other: its VM assets cannot be built']);
    await runners.close();
    await expect(startPlatformRunners({ platforms: [amd64, other], configured: true }, { tmpDir: vmTmp, accel: 'tcg', assets })).rejects.toThrow('no kernel for other');
  });
});
