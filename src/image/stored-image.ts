import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { digestOf } from '../digest.ts';
import type { BlobStore } from '../store/blob-store.ts';
import type { Image, StoredImage } from './image.ts';
import { storeLegacyJson } from './legacy-layer.ts';

/**
 * The Image of a stored one (an import, a pull, a build's result): the config bytes exactly as
 * stored (so the image id stays) and each layer's legacy json, read from the store.
 */
export async function loadImage(store: BlobStore, stored: StoredImage): Promise<Image> {
  const config = await text(await store.open(stored.imageId));
  if (digestOf(config) !== stored.imageId) throw new Error(`stored config ${stored.imageId} does not match its digest`);
  const legacyJson = await Promise.all(stored.layers.map(async (l) => text(await store.open(l.v1Json))));
  return { imageId: stored.imageId, layers: stored.layers, config, legacyJson };
}

/**
 * Store what an image adds to its layers (its config and legacy jsons), so it can be loaded
 * again (loadImage). The jsons of a `base` it was assembled on (loaded, so stored) are not
 * written again: a deep base would cost a put per layer per build.
 */
export async function storeImage(store: BlobStore, image: Image, base?: Image): Promise<void> {
  await store.put(Readable.from([Buffer.from(image.config, 'utf8')]), { expectedDigest: image.imageId });
  for (const json of image.legacyJson.slice(base?.layers.length ?? 0)) await storeLegacyJson(store, json);
}
