import { digestOf, type Digest } from '../digest.ts';
import { canonicalJson } from './canonical-json.ts';
import type { Layer, NewLayer } from './layer.ts';
import { legacyChain } from './legacy-layer.ts';
import { mergeRunConfig, type ImageRunConfig } from './run-config.ts';

interface HistoryEntry {
  created: string;
  created_by?: string;
  comment?: string;
  empty_layer?: boolean;
}

/** The image config as stored (the parts we read back). */
export interface ImageConfig {
  architecture: string;
  variant?: string;
  os: string;
  created: string;
  config?: ImageRunConfig;
  history?: HistoryEntry[];
  rootfs: { type: 'layers'; diff_ids: Digest[] };
}

/**
 * An image as the store keeps it: what an archive import, a registry pull and a build each
 * produce (and what a build record, the import cache and the registry index keep).
 */
export interface StoredImage {
  /** The config's digest, which is the image id; the config is stored under it byte for byte. */
  imageId: Digest;
  /** Bottom first. */
  layers: Layer[];
}

/** An image with the bytes a sink writes besides its layers: what sources give and sinks take. */
export interface Image extends StoredImage {
  /** The config as stored (hashing it gives the image id). */
  config: string;
  /** Each layer's legacy json, in layer order: the bytes of its `v1Json` blob (docker-archive's `<v1Id>/json`). */
  legacyJson: string[];
}

export interface NewImageInput {
  architecture: string;
  /** The architecture's variant (arm64: v8); absent, the config has none (as amd64's never do). */
  variant?: string;
  os: string;
  created: string;
  config?: ImageRunConfig;
  history: HistoryEntry[];
}

/** The parsed config of an image. */
function imageConfigOf(image: Image): ImageConfig {
  return JSON.parse(image.config) as ImageConfig;
}

/**
 * Assemble an image from a base (or none) and new layers with their tarsums, as nixpkgs
 * dockerTools lays it out: the new layers' legacy ids chain onto the base's top layer
 * through `parent`. Nothing is stored (storeImage does that).
 */
export function assembleImage(input: NewImageInput, base: Image | undefined, layers: ReadonlyArray<Omit<NewLayer, 'createdBy'>>): Image {
  const baseConfig = base ? imageConfigOf(base) : undefined;
  const runConfig = baseConfig ? mergeRunConfig(baseConfig.config, input.config) : (input.config ?? {});
  const config = canonicalJson({
    architecture: input.architecture,
    config: runConfig,
    created: input.created,
    history: [...(baseConfig?.history ?? []), ...input.history],
    os: input.os,
    rootfs: { type: 'layers', diff_ids: [...(base?.layers ?? []), ...layers].map((l) => l.diffId) },
    variant: input.variant,
  });
  const fields = { architecture: input.architecture, config: runConfig, created: input.created, os: input.os };
  const chain = legacyChain(fields, layers, base?.layers.at(-1)?.v1Id);
  return {
    imageId: digestOf(config),
    layers: [...(base?.layers ?? []), ...chain.map((c) => c.layer)],
    config,
    legacyJson: [...(base?.legacyJson ?? []), ...chain.map((c) => c.json)],
  };
}
