import { text } from 'node:stream/consumers';
import type { Digest } from '../../digest.ts';
import type { BlobStore } from '../../store/blob-store.ts';
import type { BaseImage, ImageConfig } from '../image.ts';
import { MEDIA_TYPE_DOCKER_LAYER } from '../layer.ts';

/** What a finished build keeps of each layer: enough to reuse it, as it is, under a new image. */
export interface StoredLayer {
  diffId: Digest;
  size: number;
  tarsum: string;
  v1Id: string;
  /** Blob holding the legacy layer json. */
  v1Json: Digest;
}

/** An image an earlier build of this service stored: its config blob and its layers. */
export async function loadStoredImage(store: BlobStore, configDigest: Digest, layers: StoredLayer[]): Promise<BaseImage> {
  const config = JSON.parse(await text(await store.open(configDigest))) as ImageConfig;
  const legacyLayers = await Promise.all(layers.map(async (l) => ({ id: l.v1Id, json: await text(await store.open(l.v1Json)) })));
  return {
    config,
    legacyLayers,
    stored: layers,
    layers: layers.map((l) => ({
      diffId: l.diffId,
      digest: l.diffId,
      size: l.size,
      mediaType: MEDIA_TYPE_DOCKER_LAYER,
      open: () => store.open(l.diffId),
    })),
  };
}
