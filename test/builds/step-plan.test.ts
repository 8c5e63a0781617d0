/**
 * The step planner: one plan for the build and its dry run, cache keys made from each step's
 * inputs (all of them, whatever they are), and one rule for whether a spec needs a VM.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { planBuild } from '../../src/builds/build-plan.ts';
import { MemoryResultCache } from '../../src/builds/result-cache.ts';
import { runBuild } from '../../src/builds/run-build.ts';
import { needsVm, resolveSpec, type BuildSpec } from '../../src/builds/spec.ts';
import { layerStepKey, planSteps, type LayerStep } from '../../src/builds/step-plan.ts';
import { classOf } from '../../src/queue/capabilities.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';

const scope = { tenant: 'alpha', allowDevices: false };
const resolved = (spec: Omit<BuildSpec, 'name'>) => resolveSpec({ name: 'plan/test', ...spec }, new Date(0));
const stepsOf = (spec: Omit<BuildSpec, 'name'>, baseLayers: number | undefined) => planSteps(resolved(spec), scope).layersOver(baseLayers);
const shape = (steps: LayerStep[]) => steps.map((s) => [s.name, s.entries, s.inputs.createdBy ?? `split to ${(s.inputs as { maxLayers?: number }).maxLayers}`]);

describe('cache keys', () => {
  const [contents] = stepsOf({ contents: [{ text: 'a', to: '/a' }] }, 0) as [LayerStep];
  const [vm] = stepsOf({ contents: [{ text: 'a', to: '/a' }], runAsRoot: 'true' }, 0) as [LayerStep];

  it("change with a field added to a step's inputs, with no change to the cache code", () => {
    // What a new spec field (here a `network` setting) would be once the planner puts it in the inputs.
    for (const step of [contents, vm]) {
      const withNetwork = { ...step, inputs: { ...step.inputs, network: 'none' } } as unknown as LayerStep;
      expect(layerStepKey(withNetwork, [])).not.toBe(layerStepKey(step, []));
      const otherNetwork = { ...step, inputs: { ...step.inputs, network: 'host' } } as unknown as LayerStep;
      expect(layerStepKey(otherNetwork, [])).not.toBe(layerStepKey(withNetwork, []));
    }
  });

  it('change with every input a step has, and with the layers a VM step runs over', () => {
    for (const step of [contents, vm]) {
      const key = layerStepKey(step, []);
      for (const field of Object.keys(step.inputs)) {
        const changed = { ...step, inputs: { ...step.inputs, [field]: ['changed'] } } as unknown as LayerStep;
        expect(layerStepKey(changed, []), field).not.toBe(key);
      }
    }
    expect(layerStepKey(vm, [`sha256:${'1'.repeat(64)}`])).not.toBe(layerStepKey(vm, []));
    // A contents layer is made of its entries alone: what is below it is not an input.
    expect(layerStepKey(contents, [`sha256:${'1'.repeat(64)}`])).toBe(layerStepKey(contents, []));
  });

  it("keep a VM step's layer to the tenant that ran it, and share a contents layer", () => {
    const spec = resolved({ contents: [{ text: 'a', to: '/a' }], runAsRoot: 'true' });
    const [alpha] = planSteps(spec, scope).layersOver(0) as [LayerStep];
    const [beta] = planSteps(spec, { ...scope, tenant: 'beta' }).layersOver(0) as [LayerStep];
    expect(layerStepKey(beta, [])).not.toBe(layerStepKey(alpha, []));
    const plain = resolved({ contents: [{ text: 'a', to: '/a' }] });
    expect(layerStepKey(planSteps(plain, { ...scope, tenant: 'beta' }).layersOver(0)[0] as LayerStep, [])).toBe(layerStepKey(contents, []));
  });

  it('are unknown while what they depend on is', () => {
    const [split] = stepsOf({ contents: [{ text: 'a', to: '/a' }], layering: { maxLayers: 3 } }, undefined) as [LayerStep];
    expect(layerStepKey(split, [])).toBeUndefined();
    expect(layerStepKey(vm, undefined)).toBeUndefined();
  });
});

describe('the plan', () => {
  const two = [
    { text: 'a', to: '/a' },
    { text: 'b', to: '/b' },
  ];

  it('has one step for the layer of a build, over contents or with scripts', () => {
    expect(shape(stepsOf({ contents: two }, 0))).toEqual([['contents', [0, 1], 'baler: contents']]);
    expect(shape(stepsOf({ contents: two, extraCommands: 'true' }, 0))).toEqual([['vm', [0, 1], 'baler: contents, runAsRoot, extraCommands']]);
  });

  it('splits contents to the layers a layered build has room for, the script layer on top', () => {
    expect(shape(stepsOf({ contents: two, layering: { maxLayers: 5 }, runAsRoot: 'true' }, 2))).toEqual([
      ['contents', [0, 1], 'split to 2'],
      ['vm', [], 'baler: runAsRoot, extraCommands'],
    ]);
    expect(shape(stepsOf({ layering: { maxLayers: 5 } }, 0))).toEqual([['contents', [], 'baler: empty']]);
    const [full] = stepsOf({ contents: two, layering: { maxLayers: 2 } }, 2);
    expect(full).toMatchObject({ problem: 'layering.maxLayers 2 leaves no room: the base has 2 layers' });
  });

  it('is what the dry run predicts and the build does', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'baler-plan-'));
    try {
      const store = await FsBlobStore.create(dir);
      const cache = new MemoryResultCache();
      const spec = resolved({ contents: two, layering: { maxLayers: 5 }, compression: 'none' });
      const deps = { store, cache, ...scope };
      expect((await planBuild(spec, { ...deps, noCache: false })).layers).toEqual([
        { step: 'contents', contents: [0], cached: false },
        { step: 'contents', contents: [1], cached: false },
      ]);
      const built = await runBuild(spec, { ...deps, vm: { run: () => Promise.reject(new Error('no VM')) }, loadBuildImage: () => Promise.reject(new Error('no base')) });
      const planned = await planBuild(spec, { ...deps, noCache: false });
      expect(planned.layers.map((l) => [l.contents, l.diffId, l.cached])).toEqual(built.diffIds.map((d, i) => [[i], d, true]));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('needsVm', () => {
  it('is false for scripts of white space alone, for the plan and the queue alike', () => {
    for (const blank of [{ runAsRoot: ' \n\t' }, { extraCommands: '\n' }, { runAsRoot: '', extraCommands: '  ' }]) {
      const spec = resolved({ contents: [{ text: 'a', to: '/a' }], memorySize: 4096, ...blank });
      expect(needsVm(spec)).toBe(false);
      expect(
        planSteps(spec, scope)
          .layersOver(0)
          .map((s) => s.name),
      ).toEqual(['contents']);
      expect(classOf(spec).vmMemoryMiB).toBe(512);
    }
    const scripted = resolved({ runAsRoot: ' true ', memorySize: 4096 });
    expect(needsVm(scripted)).toBe(true);
    expect(
      planSteps(scripted, scope)
        .layersOver(0)
        .map((s) => s.name),
    ).toEqual(['vm']);
    expect(classOf(scripted).vmMemoryMiB).toBe(4096);
  });
});
