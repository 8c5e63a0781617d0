import type { ImageRunConfig } from '../builds/spec.ts';
import { digestOf, type Digest } from '../digest.ts';
import { canonicalJson } from './canonical-json.ts';
import type { Layer } from './layer.ts';
import { legacyLayer } from './legacy-layer.ts';
import type { StoredLayer } from './sources/earlier-build.ts';

export interface HistoryEntry {
  created: string;
  created_by?: string;
  comment?: string;
  empty_layer?: boolean;
}

/** The image config as stored (the parts we read back). */
export interface ImageConfig {
  architecture: string;
  os: string;
  created: string;
  config?: ImageRunConfig;
  history?: HistoryEntry[];
  rootfs: { type: 'layers'; diff_ids: Digest[] };
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

/** A base image to build on: its layers are reused as they are, legacy metadata included. */
export interface BaseImage {
  config: ImageConfig;
  layers: Layer[];
  legacyLayers: LegacyLayer[];
  /** The same layers as the store keeps them, for the result of a build on this base. */
  stored: StoredLayer[];
}

export interface NewImageInput {
  architecture: string;
  os: string;
  created: string;
  config?: ImageRunConfig;
  history: HistoryEntry[];
}

/**
 * The run config of a new image over a base: the base's config is inherited whole and the
 * spec's merged on top. `Env` merges by variable name (a base variable keeps its place, the
 * spec's value wins; new ones follow); `Labels`, `ExposedPorts` and `Volumes` merge by key;
 * every other field the spec sets (Cmd, Entrypoint, User, WorkingDir, StopSignal) replaces the
 * base's. Setting `Entrypoint` without `Cmd` clears an inherited `Cmd`, as Docker does.
 */
export function mergeRunConfig(base: ImageRunConfig | undefined, spec: ImageRunConfig | undefined): ImageRunConfig {
  const merged: ImageRunConfig & Record<string, unknown> = { ...(base ?? {}) };
  if (!spec) return merged;
  for (const [key, value] of Object.entries(spec) as Array<[keyof ImageRunConfig, unknown]>) {
    if (value !== undefined) (merged as Record<string, unknown>)[key] = value;
  }
  if (base?.Env || spec.Env) {
    const env = new Map<string, string>();
    for (const entry of [...(base?.Env ?? []), ...(spec.Env ?? [])]) env.set(entry.split('=', 1)[0] ?? entry, entry);
    merged.Env = [...env.values()];
  }
  for (const key of ['Labels', 'ExposedPorts', 'Volumes'] as const) {
    if (base?.[key] && spec[key]) (merged as Record<string, unknown>)[key] = { ...base[key], ...spec[key] };
  }
  if (spec.Entrypoint !== undefined && spec.Cmd === undefined) delete merged.Cmd;
  return merged;
}

/**
 * Assemble an image from a base (or none) and new layers with their tarsums, as the seed lays
 * it out: the new layers' legacy ids chain onto the base's top layer through `parent`.
 */
export function assembleImage(input: NewImageInput, base: BaseImage | undefined, layers: Array<{ layer: Layer; tarsum: string }>): Image {
  const runConfig = base ? mergeRunConfig(base.config.config, input.config) : (input.config ?? {});
  const config = canonicalJson({
    architecture: input.architecture,
    config: runConfig,
    created: input.created,
    history: [...(base?.config.history ?? []), ...input.history],
    os: input.os,
    rootfs: { type: 'layers', diff_ids: [...(base?.layers ?? []), ...layers.map((l) => l.layer)].map((l) => l.diffId) },
  });

  const legacyLayers: LegacyLayer[] = [...(base?.legacyLayers ?? [])];
  const fields = { architecture: input.architecture, config: runConfig, created: input.created, os: input.os };
  for (const { layer, tarsum } of layers) legacyLayers.push(legacyLayer(fields, tarsum, layer.size, legacyLayers.at(-1)?.id));
  return {
    layers: [...(base?.layers ?? []), ...layers.map((l) => l.layer)],
    config,
    configDigest: digestOf(config),
    legacyLayers,
  };
}
