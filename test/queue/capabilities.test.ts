import { describe, expect, it } from 'vitest';
import { buildQueueName } from '../../src/queue/build-queue.ts';
import { canServe, MEMORY_TIERS_MIB, requirementOf, tiersServedBy } from '../../src/queue/capabilities.ts';

describe('capability classes', () => {
  it('tiers go from the default VM to the largest memorySize a spec may ask for', () => {
    expect(MEMORY_TIERS_MIB).toEqual([512, 1024, 2048, 4096, 8192, 16384]);
  });

  it('a build without a VM step, or with a small VM, needs the base tier; a bigger VM its tier', () => {
    expect(requirementOf({ memorySize: 16384 })).toEqual({ vmMemoryMiB: 512 });
    expect(requirementOf({ memorySize: 64, runAsRoot: 'true' })).toEqual({ vmMemoryMiB: 512 });
    expect(requirementOf({ memorySize: 512, extraCommands: 'true' })).toEqual({ vmMemoryMiB: 512 });
    expect(requirementOf({ memorySize: 513, runAsRoot: 'true' })).toEqual({ vmMemoryMiB: 1024 });
    expect(requirementOf({ memorySize: 16384, runAsRoot: 'true' })).toEqual({ vmMemoryMiB: 16384 });
    // A script of white space alone boots no VM (needsVm): the base tier, as it is built.
    expect(requirementOf({ memorySize: 16384, runAsRoot: ' \n', extraCommands: '' })).toEqual({ vmMemoryMiB: 512 });
  });

  it('a host serves the tiers whose largest VM it runs, largest first, and always the base tier', () => {
    expect(tiersServedBy({ accel: 'tcg', maxVmMemoryMiB: 3000 })).toEqual([2048, 1024, 512]);
    expect(tiersServedBy({ accel: 'kvm', maxVmMemoryMiB: 256 })).toEqual([512]);
    expect(canServe({ accel: 'tcg', maxVmMemoryMiB: 3000 }, { vmMemoryMiB: 4096 })).toBe(false);
    expect(canServe({ accel: 'tcg', maxVmMemoryMiB: 4096 }, { vmMemoryMiB: 4096 })).toBe(true);
  });

  it('the base tier keeps the historic queue name', () => {
    expect(buildQueueName(512)).toBe('baler-builds');
    expect(buildQueueName(2048)).toBe('baler-builds-mem2048');
  });
});
