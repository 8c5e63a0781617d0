import type { Digest } from '../digest.ts';
import type { ImageRunConfig } from '../builds/spec.ts';
import { canonicalJson } from './canonical-json.ts';
import { digestOf, hexOf } from '../digest.ts';
import type { Layer } from './layer.ts';

export interface HistoryEntry {
  created: string;
  created_by?: string;
  comment?: string;
  empty_layer?: boolean;
}

/** The legacy (v1) metadata docker-archive keeps per layer: `<id>/json`. */
export interface LegacyLayer {
  id: string;
  json: string;
}

/** An image: its layers, its config as bytes (hashing them gives the image id), and v1 metadata. */
export interface Image {
  layers: Layer[];
  config: string;
  configDigest: Digest;
  legacyLayers: LegacyLayer[];
}

export interface ImageConfigInput {
  architecture: string;
  os: string;
  created: string;
  config?: ImageRunConfig;
  history: HistoryEntry[];
}

/** Assemble an image from layers with the tarsum of each, as the seed lays it out. */
export function assembleImage(input: ImageConfigInput, layers: Array<{ layer: Layer; tarsum: string }>): Image {
  const config = canonicalJson({
    architecture: input.architecture,
    config: input.config ?? {},
    created: input.created,
    history: input.history,
    os: input.os,
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.layer.diffId) },
  });

  const legacyLayers: LegacyLayer[] = [];
  let parent: string | undefined;
  for (const { layer, tarsum } of layers) {
    // The seed's layer id is the hash of the layer json before `id` and `Size` are added.
    const base = {
      architecture: input.architecture,
      checksum: tarsum,
      config: input.config ?? {},
      created: input.created,
      os: input.os,
      parent,
    };
    const id = hexOf(digestOf(canonicalJson(base)));
    legacyLayers.push({ id, json: canonicalJson({ ...base, id, Size: layer.size }) });
    parent = id;
  }
  return { layers: layers.map((l) => l.layer), config, configDigest: digestOf(config), legacyLayers };
}
