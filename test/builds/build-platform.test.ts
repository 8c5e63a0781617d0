/**
 * A build's platform: `architecture` (and `variant`) say what the image config carries, which
 * VM its scripts run in, and what the cache keys of its layers are made of.
 */
import { describe, expect, it } from 'vitest';
import { buildCacheKey } from '../../src/builds/build-cache.ts';
import { cacheKey } from '../../src/builds/result-cache.ts';
import { architectureViolations } from '../../src/builds/platform-checks.ts';
import { resolveSpec, type BuildSpec } from '../../src/builds/spec.ts';
import { layerStepKey, planSteps, type LayerStep } from '../../src/builds/step-plan.ts';
import { assembleImage } from '../../src/image/image.ts';
import { amd64 } from '../../src/vm/platforms/amd64.ts';

const scope = { tenant: 'alpha', allowDevices: false };
const resolved = (spec: Omit<BuildSpec, 'name'>) => resolveSpec({ name: 'platform/test', ...spec }, new Date(0));

describe('architecture and variant', () => {
  it('arm64 images carry variant v8 unless the spec names it; amd64 images none', () => {
    // The default is the architecture's, not the resolved spec's: a spec's build-cache key is what it was.
    expect('variant' in resolved({ architecture: 'arm64' })).toBe(false);
    expect(resolved({ architecture: 'arm64', variant: 'v8' }).variant).toBe('v8');
    expect(planSteps(resolved({ architecture: 'arm64' }), scope).image).toMatchObject({ architecture: 'arm64', variant: 'v8', os: 'linux' });
    expect(planSteps(resolved({ architecture: 'arm64', variant: 'v8' }), scope).image).toMatchObject({ architecture: 'arm64', variant: 'v8', os: 'linux' });
    expect('variant' in planSteps(resolved({}), scope).image).toBe(false);
  });

  it('the image config says the variant; an amd64 config is byte for byte what it was', () => {
    const input = { architecture: 'amd64', os: 'linux', created: '1970-01-01T00:00:01Z', history: [] };
    const amd64 = assembleImage(input, undefined, []);
    expect(amd64.config).toBe('{"architecture":"amd64","config":{},"created":"1970-01-01T00:00:01Z","history":[],"os":"linux","rootfs":{"diff_ids":[],"type":"layers"}}');
    const arm64 = assembleImage({ ...input, architecture: 'arm64', variant: 'v8' }, undefined, []);
    expect(JSON.parse(arm64.config)).toMatchObject({ architecture: 'arm64', variant: 'v8', os: 'linux' });
  });

  it('refuses a variant its architecture lacks, and scripts for an architecture baler has no VM of', () => {
    const withArm64 = [amd64, { ...amd64, name: 'linux/arm64', architecture: 'arm64' }];
    expect(architectureViolations({ architecture: 'arm64', variant: 'v8', runAsRoot: 'true' }, withArm64)).toEqual([]);
    expect(architectureViolations({ architecture: 'arm64', runAsRoot: 'true' }, [amd64])).toEqual([
      { pointer: '/runAsRoot', message: 'scripts run in a VM of the platform built; baler has no linux/arm64 VM (it has linux/amd64)' },
    ]);
    expect(architectureViolations({ variant: 'v8' })).toEqual([{ pointer: '/variant', message: "amd64 images have no variant, not 'v8'" }]);
    expect(architectureViolations({ architecture: 'arm64', variant: 'v7' })).toEqual([{ pointer: '/variant', message: "arm64 images have variant v8, not 'v7'" }]);
    // A multi-platform spec's scripts run on each of its platforms.
    expect(architectureViolations({ platforms: ['linux/amd64', 'linux/arm64'], runAsRoot: 'true' }, [amd64])).toEqual([
      { pointer: '/runAsRoot', message: 'scripts run in a VM of the platform built; baler has no linux/arm64 VM (it has linux/amd64)' },
    ]);
    expect(architectureViolations({ platforms: ['linux/amd64', 'linux/arm64'], runAsRoot: 'true' }, withArm64)).toEqual([]);
    // Without scripts any architecture labels the image, as it always did.
    expect(architectureViolations({ architecture: 'riscv64' })).toEqual([]);
    expect(architectureViolations({ architecture: 'riscv64', extraCommands: 'true' })).toEqual([
      { pointer: '/extraCommands', message: expect.stringMatching(/^scripts run in a VM of the platform built; baler has no linux\/riscv64 VM \(it has linux\/amd64/) as unknown as string },
    ]);
  });
});

describe('cache keys per platform', () => {
  it('of a whole build: the variant the config gets is in it (an arm64 spec naming v8 or not is one build); amd64 keys are what they were', () => {
    const opts = { tenant: 'alpha', allowDevices: false };
    expect(buildCacheKey(resolved({ architecture: 'arm64' }), opts)).toBe(buildCacheKey(resolved({ architecture: 'arm64', variant: 'v8' }), opts));
    const { priority: _priority, ...amd64 } = resolved({});
    expect(buildCacheKey(resolved({}), opts)).toBe(cacheKey('build', { spec: amd64, allowDevices: false, tenant: 'alpha' }));
  });

  it('differ between platforms for every layer step: the same spec for another platform never hits the other one', () => {
    for (const spec of [{ contents: [{ text: 'a', to: '/a' }] }, { contents: [{ text: 'a', to: '/a' }], runAsRoot: 'true' }]) {
      const [amd64] = planSteps(resolved(spec), scope).layersOver(0) as [LayerStep];
      const [arm64] = planSteps(resolved({ ...spec, architecture: 'arm64' }), scope).layersOver(0) as [LayerStep];
      expect(arm64.inputs.architecture).toBe('arm64');
      expect(layerStepKey(arm64, [])).not.toBe(layerStepKey(amd64, []));
    }
    const base = { fromImage: { ref: 'registry.example/busybox:1' } };
    expect(planSteps(resolved({ ...base, architecture: 'arm64' }), scope).base?.image.architecture).toBe('arm64');
  });
});
