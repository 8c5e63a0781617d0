import { Readable } from 'node:stream';
import type { Digest } from '../digest.ts';
import type { FsTree } from '../image/fs-tree.ts';
import { assembleImage, type BaseImage, type Image, type ImageConfig } from '../image/image.ts';
import { LayerInputError } from '../image/layer-entry.ts';
import { MEDIA_TYPE_DOCKER_LAYER, type Layer } from '../image/layer.ts';
import { writeLayerTar } from '../image/layer-writer.ts';
import { layerTreeFromUpper, overlayLowerTree } from '../image/overlay-form.ts';
import { writeImage } from '../image/sinks/formats.ts';
import { importArchive } from '../image/sources/archive/import-archive.ts';
import { storeLegacyChain } from '../image/legacy-layer.ts';
import { loadStoredImage, type StoredLayer } from '../image/sources/earlier-build.ts';
import { planContentLayers } from '../image/layering.ts';
import { resolveContents } from '../image/sources/spec-contents.ts';
import { pullImage } from '../registry/pull.ts';
import type { Registries } from '../registry/registries.ts';
import { StoreFullError, type BlobStore } from '../store/blob-store.ts';
import type { VmRunner } from '../vm/vm-runner.ts';
import { epochSeconds, needsVm, type Compression, type ContentEntry, type OutputFormat, type ResolvedSpec } from './spec.ts';

export interface ArchiveInfo {
  digest: Digest;
  size: number;
  mediaType: string;
  format: OutputFormat;
  compression: Compression;
  /** For Content-Disposition, e.g. `name-tag.tar.gz`. */
  filename: string;
}

export interface BuildResult {
  /** The config digest; the config itself is stored as a blob under it. */
  imageId: Digest;
  diffIds: Digest[];
  layers: StoredLayer[];
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
  loadBuildImage(buildId: string): Promise<BaseImage>;
  allowDevices: boolean;
  /** Registries the operator allows for `fromImage: {ref}`; none when absent. */
  registries?: Registries;
  /** Called at each step, for logs and progress. */
  onStep?: (step: string, detail?: Record<string, unknown>) => void;
  /** Output of the build's scripts. */
  onLog?: (text: string) => void;
  signal?: AbortSignal;
}

/** The image in one output format, stored (deterministic bytes, so the same digest each time). */
export async function storeArchive(
  image: Image,
  spec: Pick<ResolvedSpec, 'name' | 'tag' | 'created'>,
  format: OutputFormat,
  compression: Compression,
  store: BlobStore,
): Promise<ArchiveInfo> {
  const out = await writeImage(format, image, { name: spec.name, tag: spec.tag, store, compression, created: spec.created });
  const blob = await store.put(out.stream);
  return { digest: blob.digest, size: blob.size, mediaType: out.mediaType, format, compression, filename: out.filename };
}

/**
 * Build the image a resolved spec describes and store its archive. Every intermediate is
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

  const base = await loadBase(spec, deps);
  step('contents');
  const contentsOptions = { uid: spec.uid, gid: spec.gid, allowDevices: deps.allowDevices };
  const storeLayer = async (tree: FsTree, createdBy: string) => {
    step('layer', { entries: tree.size, createdBy });
    const layerTar = writeLayerTar(tree.sortedEntries(), store, mtime);
    const stored = await store.put(layerTar.stream);
    const layer: Layer = { diffId: stored.digest, digest: stored.digest, size: stored.size, mediaType: MEDIA_TYPE_DOCKER_LAYER, open: () => store.open(stored.digest) };
    return { layer, tarsum: await layerTar.tarsum, createdBy };
  };

  const newLayers: Array<{ layer: Layer; tarsum: string; createdBy: string }> = [];
  if (spec.layering) {
    // One layer per contents entry where the budget allows; the VM step's changes on top.
    const budget = spec.layering.maxLayers - (base?.layers.length ?? 0) - (needsVm(spec) ? 1 : 0);
    if (budget < 1 && spec.contents.length > 0) {
      throw new LayerInputError(`layering.maxLayers ${spec.layering.maxLayers} leaves no room: the base has ${base?.layers.length ?? 0} layers`);
    }
    const trees = [];
    for (const entry of spec.contents) trees.push(await resolveContents([entry], store, contentsOptions));
    const sizes = trees.map((tree) => tree.sortedEntries().reduce((sum, e) => sum + e.size, 0));
    for (const group of planContentLayers(sizes, Math.max(budget, 1))) {
      const tree = group.length === 1 ? (trees[group[0] as number] as FsTree) : await resolveContents(group.map((i) => spec.contents[i] as ContentEntry), store, contentsOptions);
      newLayers.push(await storeLayer(tree, `baler: contents[${group.join(',')}]`));
    }
    if (needsVm(spec)) {
      const empty = await resolveContents([], store, contentsOptions);
      const top = await runVmStep(spec, empty, base, mtime, deps, newLayers.map((l) => l.layer.diffId));
      newLayers.push(await storeLayer(top, 'baler: runAsRoot, extraCommands'));
    }
    if (newLayers.length === 0) newLayers.push(await storeLayer(await resolveContents([], store, contentsOptions), 'baler: empty'));
  } else {
    const contents = await resolveContents(spec.contents, store, contentsOptions);
    const tree = needsVm(spec) ? await runVmStep(spec, contents, base, mtime, deps, []) : contents;
    newLayers.push(await storeLayer(tree, needsVm(spec) ? 'baler: contents, runAsRoot, extraCommands' : 'baler: contents'));
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
  await store.put(Readable.from([Buffer.from(image.config, 'utf8')]), { expectedDigest: image.configDigest });
  const layers: StoredLayer[] = [
    ...(base?.stored ?? []),
    ...(await storeLegacyChain(
      store,
      { architecture: spec.architecture, os: 'linux', created: spec.created, config: (JSON.parse(image.config) as ImageConfig).config ?? {} },
      newLayers.map((l) => ({ diffId: l.layer.diffId, size: l.layer.size, tarsum: l.tarsum })),
      base?.legacyLayers.at(-1)?.id,
    )),
  ];

  step('archive', { format: spec.format, compression: spec.compression });
  return {
    imageId: image.configDigest,
    diffIds: image.layers.map((l) => l.diffId),
    layers,
    archive: await storeArchive(image, spec, spec.format, spec.compression, store),
  };
}

/** Docker refuses images deeper than this, base included. */
export const MAX_IMAGE_LAYERS = 125;

async function loadBase(spec: ResolvedSpec, deps: BuildDeps): Promise<BaseImage | undefined> {
  const from = spec.fromImage;
  if (!from) return undefined;
  if ('build' in from) return deps.loadBuildImage(from.build);
  if ('ref' in from) {
    deps.onStep?.('pull', { ref: from.ref });
    const pulled = await pullImage(deps.store, from.ref, { registries: deps.registries ?? new Map(), architecture: spec.architecture, maxLayers: MAX_IMAGE_LAYERS - 1 });
    return loadStoredImage(deps.store, pulled.configDigest, pulled.layers);
  }
  const imported = await importArchive(deps.store, from.blob, {
    name: spec.fromImageName,
    tag: spec.fromImageTag,
    architecture: spec.architecture,
    // This build adds one layer on top.
    maxLayers: MAX_IMAGE_LAYERS - 1,
  });
  return loadStoredImage(deps.store, imported.configDigest, imported.layers);
}

/**
 * runAsRoot and extraCommands: the contents go in as the upper dir over the base's layers, the
 * scripts run in a VM, and the upper dir that comes back is the new layer's tree.
 */
async function runVmStep(
  spec: ResolvedSpec,
  contents: FsTree,
  base: BaseImage | undefined,
  mtime: number,
  deps: BuildDeps,
  /** This build's own layers below the step (layered builds), bottom first. */
  ownLayers: Digest[],
): Promise<FsTree> {
  const { store } = deps;
  deps.signal?.throwIfAborted();
  deps.onStep?.('vm', { diskSize: spec.diskSize, memorySize: spec.memorySize, timeout: spec.timeout });
  const upperInput = await store.put(writeLayerTar(contents.sortedEntries(), store, mtime).stream);
  const lowerLayers = [...(base?.layers.map((l) => l.diffId) ?? []), ...ownLayers];
  const lowers = lowerLayers.length > 0 ? await overlayLowerTree(lowerLayers, store) : undefined;

  const result = await deps.vm.run({
    lowerTar: lowers ? async () => writeLayerTar(lowers.sortedEntries(), store).stream : undefined,
    lowerCount: lowerLayers.length,
    upperTar: () => store.open(upperInput.digest),
    runAsRoot: spec.runAsRoot,
    extraCommands: spec.extraCommands,
    shadowSetup: spec.shadowSetup,
    clock: mtime,
    limits: { diskMiB: spec.diskSize, memoryMiB: spec.memorySize, timeoutSeconds: spec.timeout },
    onLog: deps.onLog,
    signal: deps.signal,
  });
  try {
    if (!result.outcome.ok) throw new VmStepError(result.outcome.reason);
    const upper = await store.put(await result.openUpperTar());
    deps.onStep?.('vm-done', { upper: upper.digest, size: upper.size });
    return await layerTreeFromUpper(upper.digest, store, { mode: 0o755, uid: 0, gid: 0 });
  } catch (err) {
    if (err instanceof VmStepError || err instanceof LayerInputError || err instanceof StoreFullError) throw err;
    throw new Error(`reading the VM step's output failed: ${(err as Error).message}`, { cause: err });
  } finally {
    await result.dispose();
  }
}
