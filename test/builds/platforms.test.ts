/**
 * `platforms`: each platform's spec is the single-platform spec of its architecture (the same
 * steps and cache keys as asking for that architecture), contents entries picked by their
 * `platform`, and the checks the schema cannot make.
 */
import { describe, expect, it } from 'vitest';
import { architectureOf, platformViolations, specForPlatform } from '../../src/builds/platforms.ts';
import { resolveSpec, type BuildSpec } from '../../src/builds/spec.ts';
import { layerStepKey, planSteps, type LayerStep } from '../../src/builds/step-plan.ts';

const scope = { tenant: 'alpha', allowDevices: false };
const resolved = (spec: Omit<BuildSpec, 'name'>) => resolveSpec({ name: 'plan/multi', ...spec }, new Date(0));
const keysOf = (steps: LayerStep[]) => steps.map((s) => layerStepKey(s, []));

const shared = { text: 'shared', to: '/shared' };
const amd = { text: 'amd64', to: '/arch', platform: 'linux/amd64' };
const arm = { text: 'arm64', to: '/arch', platform: 'linux/arm64' };

describe('a platform of a multi-platform spec', () => {
  const multi = resolved({ platforms: ['linux/amd64', 'linux/arm64'], contents: [shared, amd, arm] });

  it('defaults to an oci-archive, and its architecture is the first platform’s', () => {
    expect(multi.format).toBe('oci-archive');
    expect(multi.architecture).toBe('amd64');
    expect(resolved({ platforms: ['linux/arm64'] }).architecture).toBe('arm64');
  });

  it('takes the shared entries and its own, and keys its layers as the single-platform spec of its architecture', () => {
    for (const [platform, own] of [
      ['linux/amd64', amd],
      ['linux/arm64', arm],
    ] as const) {
      const spec = specForPlatform(multi, platform);
      expect(spec.platforms).toBeUndefined();
      expect(spec.architecture).toBe(architectureOf(platform));
      const steps = planSteps(spec, scope).layersOver(0);
      expect(steps.map((s) => s.entries)).toEqual([[0, platform === 'linux/amd64' ? 1 : 2]]);
      // The entry's `platform` picked it; it is not part of the layer.
      expect(steps[0]?.inputs.contents).toEqual([shared, { text: own.text, to: own.to }]);
      const single = planSteps(resolved({ architecture: architectureOf(platform), format: 'oci-archive', contents: [shared, { text: own.text, to: own.to }] }), scope).layersOver(0);
      expect(keysOf(steps)).toEqual(keysOf(single));
    }
  });

  it('keys the same contents differently per platform', () => {
    const [amdKey] = keysOf(planSteps(specForPlatform(multi, 'linux/amd64'), scope).layersOver(0));
    const [armKey] = keysOf(planSteps(specForPlatform(multi, 'linux/arm64'), scope).layersOver(0));
    expect(amdKey).not.toBe(armKey);
  });

  it('leaves a spec without platforms as it was (the same inputs, the same keys)', () => {
    const plain = resolved({ contents: [shared] });
    expect(plain.platforms).toBeUndefined();
    expect(plain.format).toBe('docker-archive');
    expect(planSteps(plain, scope).layersOver(0)[0]?.inputs.contents).toEqual([shared]);
  });
});

describe('platform checks', () => {
  it('refuse architecture with platforms, a platform twice, another format, and an entry for a platform not built', () => {
    expect(platformViolations({ platforms: ['linux/amd64'], architecture: 'amd64' }).map((e) => e.pointer)).toEqual(['/architecture']);
    expect(platformViolations({ platforms: ['linux/amd64', 'linux/arm64', 'linux/amd64'] }).map((e) => e.pointer)).toEqual(['/platforms/2']);
    expect(platformViolations({ platforms: ['linux/amd64'], format: 'docker-archive' }).map((e) => e.pointer)).toEqual(['/format']);
    expect(platformViolations({ platforms: ['linux/amd64'], contents: [arm] }).map((e) => e.pointer)).toEqual(['/contents/0/platform']);
    expect(platformViolations({ contents: [arm] }).map((e) => e.message)).toEqual(['linux/arm64 is not a platform of this build (linux/amd64)']);
    expect(platformViolations({ architecture: 'arm64', contents: [arm, shared] })).toEqual([]);
    expect(platformViolations({ platforms: ['linux/amd64', 'linux/arm64'], contents: [shared, amd, arm], format: 'oci-archive' })).toEqual([]);
  });
});
