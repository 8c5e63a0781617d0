import type { Digest } from '../digest.ts';
import type { FsTree } from '../image/fs-tree.ts';
import { LayerInputError } from '../image/layer-entry.ts';
import type { NewLayer } from '../image/layer.ts';
import { writeLayerTar } from '../image/layer-writer.ts';
import { planContentLayers } from '../image/layering.ts';
import { resolveContents, type ContentsOptions } from '../image/sources/spec-contents.ts';
import { countBytes } from '../streams.ts';
import type { BuildContext } from './build-deps.ts';
import { observeStep } from './build-observer.ts';
import { findCachedLayers } from './layer-cache.ts';
import type { ContentEntry } from '../image/sources/content-entry.ts';
import { layerStepKey, type ContentsStep, type LayerStep } from './step-plan.ts';
import { runVmStep } from './vm-step.ts';

/**
 * The layers of this build's own steps, bottom first: each step's from the layer cache when
 * its key (its inputs, and for a VM step the layers below) was built before and its blobs are
 * still stored, then no input is read at all; otherwise made, and recorded under that key.
 */
export async function runLayerSteps(steps: LayerStep[], baseLayers: Digest[], ctx: BuildContext): Promise<NewLayer[]> {
  const made: NewLayer[] = [];
  for (const step of steps) {
    if (step.name === 'contents' && step.problem) throw new LayerInputError(step.problem);
    const lowers = [...baseLayers, ...made.map((l) => l.diffId)];
    made.push(...(await cachedLayers(step, lowers, () => makeLayers(step, lowers, ctx), ctx)));
  }
  return made;
}

async function cachedLayers(step: LayerStep, lowers: Digest[], make: () => Promise<NewLayer[]>, ctx: BuildContext): Promise<NewLayer[]> {
  const { cache, store, observer } = ctx;
  const describe = (layers: NewLayer[]) => ({ layers: layers.map((l) => l.diffId) });
  if (!cache) return observeStep(observer, step.name, stepDetail(step), make, describe);
  const key = layerStepKey(step, lowers);
  if (key === undefined) throw new Error(`the ${step.name} step was planned without its base`);
  if (!ctx.noCache) {
    const hit = await findCachedLayers(cache, store, key);
    observer.cacheLookup('layer', hit !== null);
    if (hit) {
      observer.stepCached(step.name, { layers: hit.map((l) => l.diffId) });
      return hit;
    }
  }
  const made = await observeStep(observer, step.name, stepDetail(step), make, describe);
  await cache.set(
    'layer',
    key,
    made.map((l) => ({ diffId: l.diffId, size: l.size, tarsum: l.tarsum, createdBy: l.createdBy })),
  );
  return made;
}

/** What a step's start says of it: a VM step's limits. */
function stepDetail(step: LayerStep): Record<string, unknown> | undefined {
  return step.name === 'vm' ? { diskSize: step.inputs.diskSize, memorySize: step.inputs.memorySize, timeout: step.timeoutSeconds } : undefined;
}

async function makeLayers(step: LayerStep, lowers: Digest[], ctx: BuildContext): Promise<NewLayer[]> {
  const { uid, gid, allowDevices, contents, mtime } = step.inputs;
  const options: ContentsOptions = { uid, gid, allowDevices, usage: ctx.usage, onLog: (text) => ctx.observer.log(text) };
  if (step.name === 'vm') {
    const upper = await resolveContents(contents, ctx.store, options);
    return [await storeLayer(await runVmStep(step, upper, lowers, ctx), step.inputs.createdBy, mtime, ctx)];
  }
  if (step.split) return makeSplitContents(step, options, ctx);
  return [await storeLayer(await resolveContents(contents, ctx.store, options), step.inputs.createdBy ?? 'baler: contents', mtime, ctx)];
}

/** One layer per contents entry where the budget allows; otherwise the biggest alone and the rest shared (planContentLayers). */
async function makeSplitContents(step: ContentsStep, options: ContentsOptions, ctx: BuildContext): Promise<NewLayer[]> {
  const { contents, maxLayers, mtime } = step.inputs;
  const made: NewLayer[] = [];
  const trees: FsTree[] = [];
  for (const [i, entry] of contents.entries()) trees.push(await resolveContents([entry], ctx.store, { ...options, firstIndex: i }));
  const sizes = trees.map((tree) => tree.dataBytes);
  for (const group of planContentLayers(sizes, Math.max(maxLayers ?? 1, 1))) {
    // Read a second time for a group: its device lines are in the log once already.
    const tree =
      group.length === 1
        ? (trees[group[0] as number] as FsTree)
        : await resolveContents(
            group.map((i) => contents[i] as ContentEntry),
            ctx.store,
            { ...options, onLog: undefined },
          );
    made.push(await storeLayer(tree, `baler: contents[${group.join(',')}]`, mtime, ctx));
  }
  return made;
}

/** A tree written as a layer into the store (the `layer` step). */
async function storeLayer(tree: FsTree, createdBy: string, mtime: number, ctx: BuildContext): Promise<NewLayer> {
  const { store, observer } = ctx;
  const detail = { entries: tree.size, createdBy };
  return observeStep(
    observer,
    'layer',
    detail,
    async () => {
      ctx.usage.addLayerBytes(tree.layerBytes, createdBy);
      const layerTar = writeLayerTar(tree.sortedEntries(), store, mtime);
      const stored = await store.put(countBytes(layerTar.stream, (n) => observer.progress('layer', n)));
      return { diffId: stored.digest, size: stored.size, tarsum: await layerTar.tarsum, createdBy };
    },
    (made) => ({ bytes: made.size }),
  );
}
