import type { Digest } from '../digest.ts';
import { BudgetExceededError } from '../budget.ts';
import { BuildUsage, type LayerBudgets } from '../image/build-usage.ts';
import type { FsTree } from '../image/fs-tree.ts';
import { assembleImage, type Image, type StoredImage } from '../image/image.ts';
import { LayerInputError } from '../image/layer-entry.ts';
import type { NewLayer } from '../image/layer.ts';
import { writeLayerTar } from '../image/layer-writer.ts';
import { layerTreeFromUpper, overlayLowerTree } from '../image/overlay-form.ts';
import type { ArchiveBudgets } from '../image/sources/archive/budgets.ts';
import { importArchive } from '../image/sources/archive/import-archive.ts';
import { applyDevicePolicyToBase } from '../image/sources/base-devices.ts';
import { planContentLayers } from '../image/layering.ts';
import { resolveContents } from '../image/sources/spec-contents.ts';
import { loadImage, storeImage } from '../image/stored-image.ts';
import { pullImage } from '../registry/pull.ts';
import type { Registries } from '../registry/registries.ts';
import type { ResultCache } from './result-cache.ts';
import { baseDevicesCacheKey, contentsLayerBudget, findCachedImport, findCachedLayers, findCachedPolicedBase, importCacheKey, importOptionsOf, layerCacheKey, MAX_IMAGE_LAYERS, vmInputs, type LayerStep } from './layer-cache.ts';
import { QuotaExceededError, StoreFullError, type BlobStore } from '../store/blob-store.ts';
import { reportStep, type StepReporter } from '../events/build-reporter.ts';
import { countBytes } from '../streams.ts';
import type { VmRunner } from '../vm/vm-runner.ts';
import type { Logger } from '../log.ts';
import { describeArchive, type ArchiveInfo } from './build-archive.ts';
import type { ContentEntry } from '../image/sources/content-entry.ts';
import { epochSeconds, needsVm, type ResolvedSpec } from './spec.ts';

/** The image a build stored (its config and legacy jsons too: a later build may use it as its base), and its archive. */
export interface BuildResult extends StoredImage {
  diffIds: Digest[];
  archive: ArchiveInfo;
}

/** A VM step ended without success because of the build's own script or limits. */
export class VmStepError extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'VmStepError';
  }
}

export interface BuildDeps {
  store: BlobStore;
  vm: VmRunner;
  /** The image of an earlier build, for `fromImage: {build}`. */
  loadBuildImage(buildId: string): Promise<Image>;
  /** Whose build this is: its VM steps' layers are cached for this tenant alone. */
  tenant: string;
  allowDevices: boolean;
  /** What importing a base image archive may cost (config.archiveBudgets); absent: the defaults. */
  archiveBudgets?: ArchiveBudgets;
  /** Registries the operator allows for `fromImage: {ref}`; none when absent. */
  registries?: Registries;
  /** Called at each step, for logs and progress. */
  onStep?: (step: string, detail?: Record<string, unknown>) => void;
  /** Output of the build's scripts. */
  onLog?: (text: string) => void;
  /** Live events: steps as they start, finish or come from a cache, and bytes done. */
  events?: StepReporter;
  signal?: AbortSignal;
  /** Layers and base imports made before, by what produced them. Absent: no caching. */
  cache?: ResultCache;
  /** Look nothing up in the cache (still record what this build makes): `?noCache=true`. */
  noCache?: boolean;
  /** Told of every cache lookup and whether it hit (a hit whose blobs are gone is a miss). */
  onCacheLookup?: (cache: 'layer' | 'import', hit: boolean) => void;
  /** Lines about the build's VM step (the build's logger, with its ids). */
  logger?: Logger;
  /** What the build's tars and layers may hold (config.layerBudgets); absent: the defaults. */
  layerBudgets?: LayerBudgets;
}

/** Every blob a build result is made of: config, layers, legacy jsons, archive parts. */
export function blobsOfResult(result: BuildResult): Digest[] {
  return [result.imageId, ...result.diffIds, ...(result.layers ?? []).flatMap((l) => [l.diffId, l.v1Json]), ...(result.archive.parts ?? [])];
}

/**
 * Build the image a resolved spec describes and describe its archive. Every intermediate is
 * content-addressed in the store, so running this again after a crash redoes the work and
 * lands on the same blobs; nothing is visible until it is complete.
 */
export async function runBuild(spec: ResolvedSpec, deps: BuildDeps): Promise<BuildResult> {
  const { store } = deps;
  const mtime = epochSeconds(spec.created);
  const step = (name: string, detail?: Record<string, unknown>) => {
    deps.signal?.throwIfAborted();
    deps.onStep?.(name, detail);
  };
  const layerIds = (layers: NewLayer[]) => ({ layers: layers.map((l) => l.diffId) });

  const usage = new BuildUsage(deps.layerBudgets);
  const base = await loadBase(spec, deps, usage);
  step('contents');
  const contentsOptions = { uid: spec.uid, gid: spec.gid, allowDevices: deps.allowDevices, usage, onLog: deps.onLog };
  const storeLayer = async (tree: FsTree, createdBy: string): Promise<NewLayer> => {
    step('layer', { entries: tree.size, createdBy });
    usage.addLayerBytes(tree.layerBytes, createdBy);
    const layerTar = writeLayerTar(tree.sortedEntries(), store, mtime);
    const stored = await reportStep(
      deps.events,
      'layer',
      { entries: tree.size, createdBy },
      () => store.put(deps.events ? countBytes(layerTar.stream, (n) => deps.events?.progress('layer', n)) : layerTar.stream),
      (put) => ({ bytes: put.size }),
    );
    return { diffId: stored.digest, size: stored.size, tarsum: await layerTar.tarsum, createdBy };
  };
  /**
   * The layers `make` produces, or the same layers from the cache when `inputs` (everything
   * they depend on: blob digests, paths, modes, owners, times, scripts, base layers) were
   * built before and their blobs are still stored: then no input is read at all.
   */
  const cachedLayers = async (stepName: 'contents' | 'vm', inputs: LayerStep, make: () => Promise<NewLayer[]>): Promise<NewLayer[]> => {
    const cache = deps.cache;
    if (!cache) return reportStep(deps.events, stepName, undefined, make, layerIds);
    const key = layerCacheKey(spec, deps, inputs);
    if (!deps.noCache) {
      const hit = await findCachedLayers(cache, store, key);
      deps.onCacheLookup?.('layer', hit !== null);
      if (hit) {
        step('layers-cached', { layers: hit.map((l) => l.diffId) });
        deps.events?.stepCached(stepName, { layers: hit.map((l) => l.diffId) });
        return hit;
      }
    }
    const made = await reportStep(deps.events, stepName, undefined, make, layerIds);
    await cache.set('layer', key, made.map((l) => ({ diffId: l.diffId, size: l.size, tarsum: l.tarsum, createdBy: l.createdBy })));
    return made;
  };
  const baseDiffIds = base?.layers.map((l) => l.diffId) ?? [];
  const vm = vmInputs(spec);

  const newLayers: NewLayer[] = [];
  if (spec.layering) {
    const layering = spec.layering;
    // One layer per contents entry where the budget allows; the VM step's changes on top.
    const budget = contentsLayerBudget({ ...spec, layering }, base?.layers.length ?? 0);
    if (budget < 1 && spec.contents.length > 0) {
      throw new LayerInputError(`layering.maxLayers ${layering.maxLayers} leaves no room: the base has ${base?.layers.length ?? 0} layers`);
    }
    const contentLayers = await cachedLayers('contents', { kind: 'layered-contents', contents: spec.contents, budget }, async () => {
      const made: NewLayer[] = [];
      const trees = [];
      for (const [i, entry] of spec.contents.entries()) trees.push(await resolveContents([entry], store, { ...contentsOptions, firstIndex: i }));
      const sizes = trees.map((tree) => tree.dataBytes);
      for (const group of planContentLayers(sizes, Math.max(budget, 1))) {
        // Read a second time for a group: its device lines are in the log once already.
        const tree = group.length === 1 ? (trees[group[0] as number] as FsTree) : await resolveContents(group.map((i) => spec.contents[i] as ContentEntry), store, { ...contentsOptions, onLog: undefined });
        made.push(await storeLayer(tree, `baler: contents[${group.join(',')}]`));
      }
      return made;
    });
    newLayers.push(...contentLayers);
    if (needsVm(spec)) {
      const lowers = [...baseDiffIds, ...newLayers.map((l) => l.diffId)];
      newLayers.push(
        ...(await cachedLayers('vm', { kind: 'vm', lowers, contents: [], ...vm }, async () => {
          const empty = await resolveContents([], store, contentsOptions);
          const top = await runVmStep(spec, empty, base, mtime, deps, usage, newLayers.map((l) => l.diffId));
          return [await storeLayer(top, 'baler: runAsRoot, extraCommands')];
        })),
      );
    }
    if (newLayers.length === 0) newLayers.push(await storeLayer(await resolveContents([], store, contentsOptions), 'baler: empty'));
  } else if (needsVm(spec)) {
    newLayers.push(
      ...(await cachedLayers('vm', { kind: 'vm', lowers: baseDiffIds, contents: spec.contents, ...vm }, async () => {
        const contents = await resolveContents(spec.contents, store, contentsOptions);
        return [await storeLayer(await runVmStep(spec, contents, base, mtime, deps, usage, []), 'baler: contents, runAsRoot, extraCommands')];
      })),
    );
  } else {
    newLayers.push(
      ...(await cachedLayers('contents', { kind: 'contents', contents: spec.contents }, async () => [
        await storeLayer(await resolveContents(spec.contents, store, contentsOptions), 'baler: contents'),
      ])),
    );
  }

  const image = assembleImage(
    {
      architecture: spec.architecture,
      os: 'linux',
      created: spec.created,
      config: spec.config,
      history: newLayers.map((l) => ({ created: spec.created, created_by: l.createdBy })),
    },
    base,
    newLayers,
  );
  // Keep what a later build needs to use this image as its base: the config and legacy jsons.
  await storeImage(store, image, base);

  step('archive', { format: spec.format, compression: spec.compression });
  const archive = await reportStep(
    deps.events,
    'archive',
    { format: spec.format, compression: spec.compression },
    () => describeArchive(image, spec, spec.format, spec.compression, store, (done, total) => deps.events?.progress('archive', done, total), deps.layerBudgets),
    (a) => ({ digest: a.digest, size: a.size }),
  );
  return { imageId: image.imageId, diffIds: image.layers.map((l) => l.diffId), layers: image.layers, archive };
}

async function loadBase(spec: ResolvedSpec, deps: BuildDeps, usage: BuildUsage): Promise<Image | undefined> {
  const from = spec.fromImage;
  if (!from) return undefined;
  // An earlier build's layers went through the device rule when it ran.
  if ('build' in from) return reportStep(deps.events, 'base', from, () => deps.loadBuildImage(from.build));
  if ('ref' in from) {
    deps.onStep?.('pull', { ref: from.ref });
    return reportStep(deps.events, 'base', from, async () => {
      const pulled = await pullImage(deps.store, from.ref, { registries: deps.registries ?? new Map(), architecture: spec.architecture, maxLayers: MAX_IMAGE_LAYERS - 1 });
      const policed = await withDevicePolicy(pulled, deps, usage);
      return loadImage(deps.store, policed);
    });
  }
  const importOptions = importOptionsOf(spec);
  // An archive is verified and stored layer by layer once; later builds on it read nothing.
  const key = importCacheKey(spec, from);
  const cached = deps.cache && !deps.noCache ? await findCachedImport(deps.cache, deps.store, key) : null;
  if (deps.cache && !deps.noCache) deps.onCacheLookup?.('import', cached !== null);
  if (cached) {
    deps.onStep?.('import-cached', { blob: from.blob });
    deps.events?.stepCached('base', from);
    const policed = await withDevicePolicy(cached, deps, usage);
    return loadImage(deps.store, policed);
  }
  return reportStep(deps.events, 'base', from, async () => {
    // The budgets bound the work, not the result: they stay out of the cache key.
    const budgeted = { ...importOptions, budgets: deps.archiveBudgets };
    const imported = await importArchive(deps.store, from.blob, budgeted, (done, total) => deps.events?.progress('import', done, total));
    await deps.cache?.set('import', key, imported);
    const policed = await withDevicePolicy(imported, deps, usage);
    return loadImage(deps.store, policed);
  });
}

/**
 * A base as imported or pulled, with the device rule applied to its layers (base-devices.ts):
 * once per image and setting, then from the cache (its log lines with it, said again).
 */
async function withDevicePolicy(image: StoredImage, deps: BuildDeps, usage: BuildUsage): Promise<StoredImage> {
  const hit = deps.cache && !deps.noCache ? await findCachedPolicedBase(deps.cache, deps.store, image, deps.allowDevices) : null;
  const policed = hit ?? (await applyDevicePolicyToBase(deps.store, image, { allowDevices: deps.allowDevices, tarLimits: usage.tarLimits }));
  if (!hit) await deps.cache?.set('import', baseDevicesCacheKey(image, deps.allowDevices), policed);
  for (const line of policed.log) deps.onLog?.(line);
  return policed.image;
}

/**
 * runAsRoot and extraCommands: the contents go in as the upper dir over the base's layers, the
 * scripts run in a VM, and the upper dir that comes back is the new layer's tree.
 */
async function runVmStep(
  spec: ResolvedSpec,
  contents: FsTree,
  base: Image | undefined,
  mtime: number,
  deps: BuildDeps,
  usage: BuildUsage,
  /** This build's own layers below the step (layered builds), bottom first. */
  ownLayers: Digest[],
): Promise<FsTree> {
  const { store } = deps;
  deps.signal?.throwIfAborted();
  deps.onStep?.('vm', { diskSize: spec.diskSize, memorySize: spec.memorySize, timeout: spec.timeout });
  usage.addLayerBytes(contents.layerBytes, 'the VM step input (contents)');
  const upperInput = await store.put(writeLayerTar(contents.sortedEntries(), store, mtime).stream);
  const lowerLayers = [...(base?.layers.map((l) => l.diffId) ?? []), ...ownLayers];
  const lowers = lowerLayers.length > 0 ? await overlayLowerTree(lowerLayers, store, { usage }) : undefined;
  // What the inputs may take on the worker's disk (held before they are written there).
  const lowerBytes = (await Promise.all(lowerLayers.map(async (d) => (await store.stat(d))?.size ?? 0))).reduce((a, b) => a + b, 0);

  const result = await deps.vm.run({
    lowerTar: lowers ? async () => writeLayerTar(lowers.sortedEntries(), store).stream : undefined,
    lowerCount: lowerLayers.length,
    upperTar: () => store.open(upperInput.digest),
    inputBytes: lowerBytes + upperInput.size,
    runAsRoot: spec.runAsRoot,
    extraCommands: spec.extraCommands,
    shadowSetup: spec.shadowSetup,
    clock: mtime,
    limits: { diskMiB: spec.diskSize, memoryMiB: spec.memorySize, timeoutSeconds: spec.timeout },
    onLog: deps.onLog,
    signal: deps.signal,
    logger: deps.logger,
  });
  try {
    if (!result.outcome.ok) throw new VmStepError(result.outcome.reason);
    const upper = await store.put(await result.openUpperTar());
    deps.onStep?.('vm-done', { upper: upper.digest, size: upper.size });
    return await layerTreeFromUpper(upper.digest, store, { mode: 0o755, uid: 0, gid: 0 }, { allowDevices: deps.allowDevices, usage, onLog: deps.onLog });
  } catch (err) {
    if (err instanceof VmStepError || err instanceof LayerInputError || err instanceof BudgetExceededError || err instanceof StoreFullError || err instanceof QuotaExceededError) throw err;
    throw new Error(`reading the VM step's output failed: ${(err as Error).message}`, { cause: err });
  } finally {
    await result.dispose();
  }
}
