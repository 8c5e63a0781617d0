import { describe, expect, it } from 'vitest';
import { buildQueueName } from '../../src/queue/build-queue.ts';
import { allBuildClasses, canServe, classesServedBy, classOf, MEMORY_TIERS_MIB, platformsOf, type WorkerCapabilities } from '../../src/queue/capabilities.ts';

const amd64 = 'linux/amd64';

describe('build classes', () => {
  it('tiers go from the default VM to the largest memorySize a spec may ask for', () => {
    expect(MEMORY_TIERS_MIB).toEqual([512, 1024, 2048, 4096, 8192, 16384]);
    expect(allBuildClasses()).toEqual([`${amd64}+linux/arm64`, amd64, 'linux/arm64'].flatMap((platform) => MEMORY_TIERS_MIB.map((vmMemoryMiB) => ({ platform, vmMemoryMiB }))));
  });

  it('a build without a VM step, or with a small VM, needs the base tier; a bigger VM its tier', () => {
    expect(classOf({ architecture: 'amd64', memorySize: 16384 })).toEqual({ platform: amd64, vmMemoryMiB: 512 });
    expect(classOf({ architecture: 'amd64', memorySize: 64, runAsRoot: 'true' })).toEqual({ platform: amd64, vmMemoryMiB: 512 });
    expect(classOf({ architecture: 'amd64', memorySize: 512, extraCommands: 'true' })).toEqual({ platform: amd64, vmMemoryMiB: 512 });
    expect(classOf({ architecture: 'amd64', memorySize: 513, runAsRoot: 'true' })).toEqual({ platform: amd64, vmMemoryMiB: 1024 });
    expect(classOf({ architecture: 'amd64', memorySize: 16384, runAsRoot: 'true' })).toEqual({ platform: amd64, vmMemoryMiB: 16384 });
    // A script of white space alone boots no VM (needsVm): the base tier, as it is built.
    expect(classOf({ architecture: 'amd64', memorySize: 16384, runAsRoot: ' \n', extraCommands: '' })).toEqual({ platform: amd64, vmMemoryMiB: 512 });
  });

  it('a host serves the tiers whose largest VM it runs, largest first, and always the base tier', () => {
    expect(classesServedBy({ accel: 'tcg', platform: amd64, maxVmMemoryMiB: 3000 }).map((c) => c.vmMemoryMiB)).toEqual([2048, 1024, 512]);
    expect(classesServedBy({ accel: 'kvm', platform: amd64, maxVmMemoryMiB: 256 })).toEqual([{ platform: amd64, vmMemoryMiB: 512 }]);
    expect(canServe({ accel: 'tcg', platform: amd64, maxVmMemoryMiB: 3000 }, { platform: amd64, vmMemoryMiB: 4096 })).toBe(false);
    expect(canServe({ accel: 'tcg', platform: amd64, maxVmMemoryMiB: 4096 }, { platform: amd64, vmMemoryMiB: 4096 })).toBe(true);
  });

  it("a host serves only its platform's classes; a worker that names none runs linux/amd64", () => {
    const arm = { accel: 'kvm', platform: 'linux/arm64', maxVmMemoryMiB: 4096 } as const;
    expect(canServe(arm, { platform: amd64, vmMemoryMiB: 512 })).toBe(false);
    expect(canServe(arm, { platform: 'linux/arm64', vmMemoryMiB: 512 })).toBe(true);
    expect(classesServedBy(arm).every((c) => c.platform === 'linux/arm64')).toBe(true);
    expect(canServe({ accel: 'tcg', maxVmMemoryMiB: 512 }, { platform: amd64, vmMemoryMiB: 512 })).toBe(true);
  });

  it("a build with a VM step requires its architecture's platform; one without runs no VM, so any default-platform host takes it", () => {
    expect(classOf({ architecture: 'arm64', memorySize: 512, runAsRoot: 'true' })).toEqual({ platform: 'linux/arm64', vmMemoryMiB: 512 });
    expect(classOf({ architecture: 'arm64', memorySize: 2000, extraCommands: 'true' })).toEqual({ platform: 'linux/arm64', vmMemoryMiB: 2048 });
    expect(classOf({ architecture: 'arm64', memorySize: 2000 })).toEqual({ platform: amd64, vmMemoryMiB: 512 });
    expect(classOf({ architecture: 'ppc64le', memorySize: 512 })).toEqual({ platform: amd64, vmMemoryMiB: 512 });
    // A multi-platform build runs every platform's VM step on the worker that takes it: one serving all of them.
    expect(classOf({ architecture: 'arm64', platforms: ['linux/arm64', 'linux/amd64'], memorySize: 512, runAsRoot: 'true' })).toEqual({ platform: 'linux/amd64+linux/arm64', vmMemoryMiB: 512 });
    expect(classOf({ architecture: 'arm64', platforms: ['linux/arm64'], memorySize: 512, runAsRoot: 'true' })).toEqual({ platform: 'linux/arm64', vmMemoryMiB: 512 });
    expect(classOf({ architecture: 'amd64', platforms: ['linux/arm64', 'linux/amd64'], memorySize: 512 })).toEqual({ platform: amd64, vmMemoryMiB: 512 });
  });

  it("a host serving several platforms serves each one's tiers, largest first, its first platform first within a tier", () => {
    const both: WorkerCapabilities = {
      accel: 'kvm',
      platform: amd64,
      platforms: [
        { platform: amd64, accel: 'kvm' },
        { platform: 'linux/arm64', accel: 'tcg' },
      ],
      maxVmMemoryMiB: 1024,
    };
    expect(platformsOf(both)).toEqual([amd64, 'linux/arm64']);
    expect(classesServedBy(both)).toEqual([
      { platform: 'linux/amd64+linux/arm64', vmMemoryMiB: 1024 },
      { platform: amd64, vmMemoryMiB: 1024 },
      { platform: 'linux/arm64', vmMemoryMiB: 1024 },
      { platform: 'linux/amd64+linux/arm64', vmMemoryMiB: 512 },
      { platform: amd64, vmMemoryMiB: 512 },
      { platform: 'linux/arm64', vmMemoryMiB: 512 },
    ]);
    expect(canServe(both, { platform: 'linux/amd64+linux/arm64', vmMemoryMiB: 512 })).toBe(true);
    expect(canServe({ ...both, platforms: [{ platform: amd64, accel: 'kvm' }] }, { platform: 'linux/amd64+linux/arm64', vmMemoryMiB: 512 })).toBe(false);
    expect(canServe(both, { platform: 'linux/arm64', vmMemoryMiB: 1024 })).toBe(true);
    expect(canServe(both, { platform: 'linux/arm64', vmMemoryMiB: 2048 })).toBe(false);
    expect(canServe(both, { platform: 'linux/riscv64', vmMemoryMiB: 512 })).toBe(false);
    // An entry from before several platforms: its one platform.
    expect(platformsOf({ accel: 'kvm', platform: 'linux/arm64', maxVmMemoryMiB: 512 })).toEqual(['linux/arm64']);
  });

  it('queues are named by what they require; linux/amd64 and the base tier keep the historic names', () => {
    expect(buildQueueName({ platform: amd64, vmMemoryMiB: 512 })).toBe('baler-builds');
    expect(buildQueueName({ platform: amd64, vmMemoryMiB: 2048 })).toBe('baler-builds-mem2048');
    expect(buildQueueName({ platform: 'linux/arm64', vmMemoryMiB: 512 })).toBe('baler-builds-arm64-mem512');
    expect(buildQueueName({ platform: 'linux/amd64+linux/arm64', vmMemoryMiB: 1024 })).toBe('baler-builds-amd64+arm64-mem1024');
  });
});
