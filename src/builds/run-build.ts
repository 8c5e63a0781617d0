import { BuildUsage } from '../image/build-usage.ts';
import { assembleImage } from '../image/image.ts';
import { storeImage } from '../image/stored-image.ts';
import { describeArchive } from './build-archive.ts';
import { loadBase } from './base-step.ts';
import type { BuildContext, BuildDeps } from './build-deps.ts';
import { observeStep, SILENT_OBSERVER, type BuildObserver } from './build-observer.ts';
import type { BuildResult } from './build-result.ts';
import { runLayerSteps } from './layer-steps.ts';
import type { ResolvedSpec } from './spec.ts';
import { planSteps } from './step-plan.ts';

/**
 * Build the image a resolved spec describes and describe its archive, step by step as planned
 * (step-plan.ts). Every intermediate is content-addressed in the store, so running this again
 * after a crash redoes the work and lands on the same blobs; nothing is visible until it is
 * complete.
 */
export async function runBuild(spec: ResolvedSpec, deps: BuildDeps): Promise<BuildResult> {
  const { store } = deps;
  const ctx: BuildContext = { ...deps, observer: stoppable(deps.observer ?? SILENT_OBSERVER, deps.signal), usage: new BuildUsage(deps.layerBudgets) };
  const steps = planSteps(spec, deps);
  const base = steps.base && (await loadBase(steps.base, ctx));
  const newLayers = await runLayerSteps(steps.layersOver(base?.layers.length ?? 0), base?.layers.map((l) => l.diffId) ?? [], ctx);

  const image = assembleImage({ ...steps.image, history: newLayers.map((l) => ({ created: spec.created, created_by: l.createdBy })) }, base, newLayers);
  // Keep what a later build needs to use this image as its base: the config and legacy jsons.
  await storeImage(store, image, base);

  const { format, compression } = steps.archive;
  const archive = await observeStep(
    ctx.observer,
    'archive',
    { format, compression },
    () => describeArchive(image, spec, format, compression, store, (done, total) => ctx.observer.progress('archive', done, total), deps.layerBudgets),
    (a) => ({ digest: a.digest, size: a.size }),
  );
  const result: BuildResult = { imageId: image.imageId, diffIds: image.layers.map((l) => l.diffId), layers: image.layers, archive };
  // What the build's provenance and SBOM name as its base (attest/).
  if (base) result.base = { imageId: base.imageId };
  return result;
}

/** The observer, with the build stopped (cancel, time limit) as a step is about to begin. */
function stoppable(observer: BuildObserver, signal: AbortSignal | undefined): BuildObserver {
  if (!signal) return observer;
  return {
    stepStarted: (name, detail) => {
      signal.throwIfAborted();
      return observer.stepStarted(name, detail);
    },
    stepCached: (name, detail) => {
      signal.throwIfAborted();
      observer.stepCached(name, detail);
    },
    progress: (what, done, total) => observer.progress(what, done, total),
    log: (text) => observer.log(text),
    cacheLookup: (cache, hit) => observer.cacheLookup(cache, hit),
  };
}
