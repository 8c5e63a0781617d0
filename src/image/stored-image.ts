import { text } from 'node:stream/consumers';
import { digestOf, type Digest } from '../digest.ts';
import type { BlobStore } from '../store/blob-store.ts';
import type { Image } from './image.ts';
import { loadStoredImage, type StoredLayer } from './sources/earlier-build.ts';

/**
 * The `Image` of a succeeded build, from what its result keeps (`imageId`, `layers`): the
 * config bytes exactly as stored (so the image id stays), its layers (uncompressed blobs, digest
 * = diff_id) and their legacy metadata. What the sinks take.
 */
export async function loadImage(store: BlobStore, imageId: Digest, layers: StoredLayer[]): Promise<Image> {
  const config = await text(await store.open(imageId));
  if (digestOf(config) !== imageId) throw new Error(`stored config ${imageId} does not match its digest`);
  const base = await loadStoredImage(store, imageId, layers);
  return { config, configDigest: imageId, layers: base.layers, legacyLayers: base.legacyLayers };
}
