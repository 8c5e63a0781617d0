import type { Digest } from '../digest.ts';
import type { BlobStore } from '../store/blob-store.ts';
import { buildCacheKey, findCachedBuild } from './build-cache.ts';
import type { BuildRecord } from './build-record.ts';
import { imageOfPlatform } from './build-result.ts';
import { platformOfArchitecture } from './platforms.ts';
import type { NewLayer } from '../image/layer.ts';
import { findCachedImport, findCachedLayers, findCachedPolicedBase } from './layer-cache.ts';
import type { ResultCache } from './result-cache.ts';
import { specForPlatform } from './platforms.ts';
import { referencedBlobs, type FromImage, type ResolvedSpec } from './spec.ts';
import { importCacheKey, layerStepKey, planSteps, type BaseStep, type LayerStep } from './step-plan.ts';

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
  /** A multi-platform build's images, each planned as its platform's build (the top-level `base` and `layers` are the first's). */
  platforms?: Array<{ platform: string; base?: BuildPlan['base']; layers: PlannedLayer[] }>;
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
 * up with the steps and keys the worker builds from (step-plan.ts). A registry base is pulled
 * only when built, so what depends on its layers is `cached: null`. With `layering`, contents
 * that need more layers than their budget are split by size when built; uncached, they are
 * one item here.
 */
export async function planBuild(spec: ResolvedSpec, deps: PlanDeps): Promise<BuildPlan> {
  const { store } = deps;
  const cache = deps.noCache ? undefined : deps.cache;
  const blobs: BuildPlan['blobs'] = [];
  for (const digest of referencedBlobs(spec)) blobs.push({ digest, size: (await store.stat(digest))?.size ?? 0 });

  // A multi-platform build: each platform as the build of its own spec; the first one's at the top.
  const platforms = [];
  for (const platform of spec.platforms ?? []) platforms.push({ platform, ...(await planImage(specForPlatform(spec, platform), deps, cache)) });
  const image = platforms[0] ?? (await planImage(spec, deps, cache));

  const key = buildCacheKey(spec, deps);
  const whole = cache && key ? await findCachedBuild(cache, store, key) : null;
  const plan: BuildPlan = { dryRun: true, spec, blobs, layers: image.layers, cached: whole !== null };
  if (image.base) plan.base = image.base;
  if (whole) plan.cachedFrom = whole.buildId;
  if (spec.platforms) plan.platforms = platforms;
  return plan;
}

/** The base and the layers of one image (one platform's). */
async function planImage(spec: ResolvedSpec, deps: PlanDeps, cache: ResultCache | undefined): Promise<Pick<BuildPlan, 'base' | 'layers'>> {
  const { store } = deps;
  const steps = planSteps(spec, deps);
  const base = steps.base ? await planBase(steps.base, deps, cache) : { layers: [] };
  const layers: PlannedLayer[] = [...(base.layers ?? [])];
  // The layers below the next step, while they are known.
  let lowers = base.layers?.map((l) => l.diffId as Digest);
  for (const step of steps.layersOver(lowers?.length)) {
    // A step the build would refuse (a layer budget without room) is looked up nowhere.
    const refused = step.name === 'contents' && step.problem !== undefined;
    const key = refused ? undefined : layerStepKey(step, lowers);
    const hit = cache && key ? await findCachedLayers(cache, store, key) : null;
    const planned = plannedLayers(step, hit, refused || key !== undefined);
    layers.push(...planned);
    lowers = lowers && planned.every((l) => l.diffId) ? [...lowers, ...planned.map((l) => l.diffId as Digest)] : undefined;
  }
  return { layers, ...(base.summary ? { base: base.summary } : {}) };
}

/** The layers a step gives: its cache hit's, or what it would make (`known`: whether its key, so the answer, is known yet). */
function plannedLayers(step: LayerStep, hit: NewLayer[] | null, known: boolean): PlannedLayer[] {
  const kind = step.name === 'vm' ? 'script' : 'contents';
  const cached = known ? false : null;
  if (step.name === 'vm' || !step.split) {
    const entries = step.name === 'contents' || step.entries.length > 0 ? { contents: step.entries } : {};
    const layer = hit?.[0];
    return [layer ? { step: kind, ...entries, diffId: layer.diffId, size: layer.size, cached: true } : { step: kind, ...entries, cached }];
  }
  // Split to a budget: with room for every entry, one layer each.
  const alone = step.inputs.maxLayers !== undefined && step.entries.length <= step.inputs.maxLayers;
  if (hit) return hit.map((l, i) => ({ step: kind, ...(alone ? { contents: [i] } : {}), diffId: l.diffId, size: l.size, cached: true }));
  if (alone) return step.entries.map((i) => ({ step: kind, contents: [i], cached }));
  return [{ step: kind, contents: step.entries, cached }];
}

/** The base image as far as it is known without pulling or importing anything; `layers` unset: not known yet. */
async function planBase(step: BaseStep, deps: PlanDeps, cache: ResultCache | undefined): Promise<{ summary?: BuildPlan['base']; layers?: PlannedLayer[] }> {
  const { from } = step;
  const image = 'build' in from && deps.base?.result ? imageOfPlatform(deps.base.result, platformOfArchitecture(step.image.architecture)) : null;
  if ('build' in from && image) {
    const { imageId, layers } = image;
    return {
      summary: { from, imageId, layers: layers.length, cached: true },
      layers: layers.map((l) => ({ step: 'base', diffId: l.diffId, size: l.size, cached: true })),
    };
  }
  if ('blob' in from) {
    const found = cache ? await findCachedImport(cache, deps.store, importCacheKey({ ...step, from })) : null;
    // Its layers as the build uses them: with the device rule applied (the build caches both).
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
