import type { Digest } from '../digest.ts';
import type { BlobStore } from '../store/blob-store.ts';
import { buildCacheKey, findCachedBuild } from './build-cache.ts';
import type { BuildRecord } from './build-record.ts';
import { contentsLayerBudget, findCachedImport, findCachedLayers, findCachedPolicedBase, importCacheKey, layerCacheKey, vmInputs, type LayerStep } from './layer-cache.ts';
import type { ResultCache } from './result-cache.ts';
import { needsVm, referencedBlobs, type FromImage, type ResolvedSpec } from './spec.ts';

/** One layer of the image a spec would give, bottom first (BuildPlan in openapi.yaml). */
export interface PlannedLayer {
  step: 'base' | 'contents' | 'script';
  /** The spec's `contents` entries in this layer (indexes). */
  contents?: number[];
  diffId?: Digest;
  size?: number;
  /** Taken from the base or the caches without work; null: known only once the base is resolved. */
  cached: boolean | null;
}

/** What a submission would build, without building (`POST /v1/builds?dryRun=true`). */
export interface BuildPlan {
  dryRun: true;
  spec: ResolvedSpec;
  blobs: Array<{ digest: Digest; size: number }>;
  base?: { from: FromImage; imageId?: Digest; layers?: number; cached: boolean | null };
  layers: PlannedLayer[];
  cached: boolean;
  cachedFrom?: string;
}

export interface PlanDeps {
  store: BlobStore;
  cache?: ResultCache;
  /** Whose plan this is: VM layers and whole builds are found only among this tenant's. */
  tenant: string;
  allowDevices: boolean;
  /** The base build, for `fromImage: {build}` (checked by the caller: the tenant's, succeeded). */
  base?: BuildRecord;
  noCache: boolean;
}

/**
 * The plan of a resolved spec from what is known without reading any input: blob sizes, the
 * base build's or the cached import's layers, and the build, layer and import caches, looked
 * up with the keys the worker uses. A registry base is pulled only when built, so what depends
 * on its layers is `cached: null`. With `layering`, contents that need more layers than their
 * budget are split by size when built; uncached, they are one item here.
 */
export async function planBuild(spec: ResolvedSpec, deps: PlanDeps): Promise<BuildPlan> {
  const { store } = deps;
  const cache = deps.noCache ? undefined : deps.cache;
  const blobs: BuildPlan['blobs'] = [];
  for (const digest of referencedBlobs(spec)) blobs.push({ digest, size: (await store.stat(digest))?.size ?? 0 });

  const base = await planBase(spec, deps, cache);
  const layers: PlannedLayer[] = [...(base.layers ?? [])];
  const baseDiffIds = base.layers?.map((l) => l.diffId as Digest);
  const lookup = async (step: LayerStep) => (cache ? await findCachedLayers(cache, store, layerCacheKey(spec, deps, step)) : null);
  const all = spec.contents.map((_, i) => i);

  const own: PlannedLayer[] = [];
  let ownKnown = true;
  if (spec.layering) {
    const budget = baseDiffIds ? contentsLayerBudget({ ...spec, layering: spec.layering }, baseDiffIds.length) : undefined;
    const hit = budget !== undefined && budget >= 1 ? await lookup({ kind: 'layered-contents', contents: spec.contents, budget }) : null;
    const alone = budget !== undefined && spec.contents.length <= budget;
    if (hit) {
      own.push(...hit.map((l, i) => ({ step: 'contents' as const, ...(alone ? { contents: [i] } : {}), diffId: l.diffId, size: l.size, cached: true })));
    } else {
      ownKnown = false;
      const cached = budget === undefined ? null : false;
      if (alone) own.push(...all.map((i) => ({ step: 'contents' as const, contents: [i], cached })));
      else if (spec.contents.length > 0) own.push({ step: 'contents', contents: all, cached });
    }
    if (needsVm(spec)) {
      const lowers = baseDiffIds && ownKnown ? [...baseDiffIds, ...own.map((l) => l.diffId as Digest)] : undefined;
      own.push(planScriptLayer(lowers && (await lookup({ kind: 'vm', lowers, contents: [], ...vmInputs(spec) })), lowers !== undefined, []));
    }
  } else if (needsVm(spec)) {
    const hit = baseDiffIds && (await lookup({ kind: 'vm', lowers: baseDiffIds, contents: spec.contents, ...vmInputs(spec) }));
    own.push(planScriptLayer(hit, baseDiffIds !== undefined, all));
  } else {
    const hit = await lookup({ kind: 'contents', contents: spec.contents });
    own.push(hit?.[0] ? { step: 'contents', contents: all, diffId: hit[0].diffId, size: hit[0].size, cached: true } : { step: 'contents', contents: all, cached: false });
  }
  layers.push(...own);

  const key = buildCacheKey(spec, deps);
  const whole = cache && key ? await findCachedBuild(cache, store, key) : null;
  const plan: BuildPlan = { dryRun: true, spec, blobs, layers, cached: whole !== null };
  if (base.summary) plan.base = base.summary;
  if (whole) plan.cachedFrom = whole.buildId;
  return plan;
}

function planScriptLayer(hit: Awaited<ReturnType<typeof findCachedLayers>> | undefined, known: boolean, contents: number[]): PlannedLayer {
  const layer = hit?.[0];
  const entries = contents.length > 0 ? { contents } : {};
  if (layer) return { step: 'script', ...entries, diffId: layer.diffId, size: layer.size, cached: true };
  return { step: 'script', ...entries, cached: known ? false : null };
}

/** The base image as far as it is known without pulling or importing anything; `layers` unset: not known yet. */
async function planBase(
  spec: ResolvedSpec,
  deps: PlanDeps,
  cache: ResultCache | undefined,
): Promise<{ summary?: BuildPlan['base']; layers?: PlannedLayer[] }> {
  const from = spec.fromImage;
  if (!from) return { layers: [] };
  if ('build' in from && deps.base?.result) {
    const { imageId, layers } = deps.base.result;
    return {
      summary: { from, imageId, layers: layers.length, cached: true },
      layers: layers.map((l) => ({ step: 'base', diffId: l.diffId, size: l.size, cached: true })),
    };
  }
  if ('blob' in from) {
    const found = cache ? await findCachedImport(cache, deps.store, importCacheKey(spec, from)) : null;
    // Its layers as the build uses them: with the device rule applied (runBuild caches both).
    const imported = found && cache ? (await findCachedPolicedBase(cache, deps.store, found, deps.allowDevices))?.image : undefined;
    if (imported) {
      return {
        summary: { from, imageId: imported.imageId, layers: imported.layers.length, cached: true },
        layers: imported.layers.map((l) => ({ step: 'base', diffId: l.diffId, size: l.size, cached: true })),
      };
    }
    return { summary: { from, cached: false } };
  }
  return { summary: { from, cached: null } };
}
