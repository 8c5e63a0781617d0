import type { Digest } from '../digest.ts';
import type { StoredImage } from '../image/image.ts';
import type { NewLayer } from '../image/layer.ts';
import type { PolicedBase } from '../image/sources/base-devices.ts';
import { allStored, type BlobStore } from '../store/blob-store.ts';
import { cacheKey, type ResultCache } from './result-cache.ts';
import type { ContentEntry } from '../image/sources/content-entry.ts';
import { epochSeconds, needsVm, type FromImage, type ResolvedSpec } from './spec.ts';

/**
 * What one build step's layers depend on, and so their layer-cache key. The worker (runBuild)
 * looks layers up by these keys and the API's dry run predicts hits with the very same keys
 * and lookups.
 */
export type LayerStep =
  | { kind: 'contents'; contents: ContentEntry[] }
  | { kind: 'layered-contents'; contents: ContentEntry[]; budget: number }
  | ({ kind: 'vm'; lowers: Digest[]; contents: ContentEntry[] } & ReturnType<typeof vmInputs>);

export function vmInputs(spec: ResolvedSpec) {
  return { runAsRoot: spec.runAsRoot, extraCommands: spec.extraCommands, shadowSetup: spec.shadowSetup, diskSize: spec.diskSize, memorySize: spec.memorySize };
}

/** Who looks a layer up, and where: part of some keys (see layerCacheKey). */
export interface LayerCacheScope {
  /** The tenant whose build this is. */
  tenant: string;
  allowDevices: boolean;
}

/**
 * The layer-cache key of a step: its inputs plus what every layer of the spec depends on. A
 * VM step's layer is whatever its script made (random bytes, host keys, the time), not a
 * function of its inputs: it is keyed by its tenant, so only the tenant that ran the script
 * gets it again. A contents layer is baler's own pure function of blobs the submitter must
 * own: shared by every tenant.
 */
export function layerCacheKey(spec: ResolvedSpec, scope: LayerCacheScope, step: LayerStep): string {
  const ranBy = step.kind === 'vm' ? { tenant: scope.tenant } : {};
  return cacheKey('layer', { ...step, ...ranBy, uid: spec.uid, gid: spec.gid, mtime: epochSeconds(spec.created), allowDevices: scope.allowDevices, architecture: spec.architecture });
}

/** With `layering`: how many layers this build's contents may take (base and script layers count). */
export function contentsLayerBudget(spec: ResolvedSpec & { layering: { maxLayers: number } }, baseLayerCount: number): number {
  return spec.layering.maxLayers - baseLayerCount - (needsVm(spec) ? 1 : 0);
}

/** Docker refuses images deeper than this, base included. */
export const MAX_IMAGE_LAYERS = 125;

/** How an uploaded base archive is imported (one image of it, checked against the layer limit). */
export function importOptionsOf(spec: ResolvedSpec) {
  return {
    name: spec.fromImageName,
    tag: spec.fromImageTag,
    architecture: spec.architecture,
    // This build adds one layer on top.
    maxLayers: MAX_IMAGE_LAYERS - 1,
  };
}

/**
 * The import-cache key of an uploaded base archive: verified and stored once per key, for
 * every tenant. Importing is baler's own pure function of the archive, which the submitter
 * must own (so holds every byte of already): a hit hands over nothing it could not import.
 */
export function importCacheKey(spec: ResolvedSpec, from: Extract<FromImage, { blob: Digest }>): string {
  return cacheKey('import', { blob: from.blob, ...importOptionsOf(spec) });
}

/** The cached layers of a step (enough to use them without reading anything), if every one is still stored (garbage collection may have taken some). */
export async function findCachedLayers(cache: ResultCache, store: BlobStore, key: string): Promise<NewLayer[] | null> {
  const hit = await cache.get<NewLayer[]>('layer', key);
  return hit && (await allStored(store, hit.map((l) => ({ digest: l.diffId, size: l.size })))) ? hit : null;
}

/** The cached import of an uploaded base archive, if everything it names is still stored. */
export async function findCachedImport(cache: ResultCache, store: BlobStore, key: string): Promise<StoredImage | null> {
  const hit = await cache.get<StoredImage>('import', key);
  const blobs = hit ? [{ digest: hit.imageId }, ...hit.layers.flatMap((l) => [{ digest: l.diffId, size: l.size }, { digest: l.v1Json }])] : [];
  return hit && (await allStored(store, blobs)) ? hit : null;
}

/**
 * The key of a base image (as an archive import or a registry pull made it) with the device
 * rule applied to its layers under `allowDevices` (applyDevicePolicyToBase): a pure function
 * of the stored layers and the setting, shared like imports.
 */
export function baseDevicesCacheKey(image: StoredImage, allowDevices: boolean): string {
  return cacheKey('import', { devicesOf: image.imageId, layers: image.layers.map((l) => l.diffId), allowDevices });
}

/** The cached base with the device rule applied, if everything it names is still stored. */
export async function findCachedPolicedBase(cache: ResultCache, store: BlobStore, image: StoredImage, allowDevices: boolean): Promise<PolicedBase | null> {
  const hit = await cache.get<PolicedBase>('import', baseDevicesCacheKey(image, allowDevices));
  const blobs = hit ? [{ digest: hit.image.imageId }, ...hit.image.layers.flatMap((l) => [{ digest: l.diffId, size: l.size }, { digest: l.v1Json }])] : [];
  return hit && (await allStored(store, blobs)) ? hit : null;
}
