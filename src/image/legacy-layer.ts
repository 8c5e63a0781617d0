import { Readable } from 'node:stream';
import { digestOf, hexOf, type Digest } from '../digest.ts';
import type { BlobStore } from '../store/blob-store.ts';
import { canonicalJson } from './canonical-json.ts';
import type { LegacyLayer } from './image.ts';
import type { StoredLayer } from './sources/earlier-build.ts';

/** The image-wide fields the seed copies into every legacy (v1) layer json. */
export interface LegacyLayerFields {
  architecture?: string;
  os?: string;
  created?: string;
  /** The image's run config (`config` of the image config); `{}` when it has none. */
  config: unknown;
}

/**
 * One legacy layer as the seed writes it: the id is the sha256 of the canonical JSON
 * `{architecture, checksum, config, created, os, parent}` before `id` and `Size` are added;
 * the json is that object with `id` and `Size`. `parent` is the id of the layer below (none for
 * the bottom layer), so ids chain.
 */
export function legacyLayer(fields: LegacyLayerFields, tarsum: string, size: number, parent: string | undefined): LegacyLayer {
  const base = {
    architecture: fields.architecture,
    checksum: tarsum,
    config: fields.config,
    created: fields.created,
    os: fields.os,
    parent,
  };
  const id = hexOf(digestOf(canonicalJson(base)));
  return { id, json: canonicalJson({ ...base, id, Size: size }) };
}

/**
 * The legacy chain over stored layers (bottom first), each json stored as a blob: what a later
 * build needs to reuse these layers as they are. `parent` is the legacy id below the first.
 */
export async function storeLegacyChain(
  store: BlobStore,
  fields: LegacyLayerFields,
  layers: ReadonlyArray<{ diffId: Digest; size: number; tarsum: string }>,
  parent?: string,
): Promise<StoredLayer[]> {
  const out: StoredLayer[] = [];
  for (const layer of layers) {
    const legacy = legacyLayer(fields, layer.tarsum, layer.size, parent);
    const v1Json = digestOf(legacy.json);
    await store.put(Readable.from([Buffer.from(legacy.json, 'utf8')]), { expectedDigest: v1Json });
    out.push({ diffId: layer.diffId, size: layer.size, tarsum: layer.tarsum, v1Id: legacy.id, v1Json });
    parent = legacy.id;
  }
  return out;
}
