import type { StoredImage } from '../image/image.ts';
import type { NewLayer } from '../image/layer.ts';
import type { PolicedBase } from '../image/sources/base-devices.ts';
import { allStored, type BlobStore } from '../store/blob-store.ts';
import { cacheKey, type ResultCache } from './result-cache.ts';

/** The cached layers of a step (enough to use them without reading anything), if every one is still stored (garbage collection may have taken some). */
export async function findCachedLayers(cache: ResultCache, store: BlobStore, key: string): Promise<NewLayer[] | null> {
  const hit = await cache.get<NewLayer[]>('layer', key);
  return hit &&
    (await allStored(
      store,
      hit.map((l) => ({ digest: l.diffId, size: l.size })),
    ))
    ? hit
    : null;
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
