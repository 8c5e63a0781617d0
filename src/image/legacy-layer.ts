import { Readable } from 'node:stream';
import { digestOf, hexOf, type Digest } from '../digest.ts';
import type { BlobStore } from '../store/blob-store.ts';
import { canonicalJson } from './canonical-json.ts';
import type { Layer } from './layer.ts';

/** The image-wide fields the seed (nixpkgs dockerTools) copies into every legacy (v1) layer json. */
export interface LegacyLayerFields {
  architecture?: string;
  os?: string;
  created?: string;
  /** The image's run config (`config` of the image config); `{}` when it has none. */
  config: unknown;
}

/**
 * One legacy layer as nixpkgs dockerTools writes it: the id is the sha256 of the canonical JSON
 * `{architecture, checksum, config, created, os, parent}` before `id` and `Size` are added;
 * the json is that object with `id` and `Size`. `parent` is the id of the layer below (none for
 * the bottom layer), so ids chain.
 */
function legacyLayer(fields: LegacyLayerFields, tarsum: string, size: number, parent: string | undefined): { id: string; json: string } {
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
 * The legacy chain over layers (bottom first): each layer with its legacy id and json blob
 * digest, and the json itself (to be stored under that digest). `parent` is the legacy id
 * below the first.
 */
export function legacyChain(fields: LegacyLayerFields, layers: ReadonlyArray<{ diffId: Digest; size: number; tarsum: string }>, parent?: string): Array<{ layer: Layer; json: string }> {
  const out: Array<{ layer: Layer; json: string }> = [];
  for (const layer of layers) {
    const legacy = legacyLayer(fields, layer.tarsum, layer.size, parent);
    out.push({ layer: { diffId: layer.diffId, size: layer.size, tarsum: layer.tarsum, v1Id: legacy.id, v1Json: digestOf(legacy.json) }, json: legacy.json });
    parent = legacy.id;
  }
  return out;
}

/** A legacy json, stored under its digest (`Layer.v1Json`). */
export async function storeLegacyJson(store: BlobStore, json: string): Promise<void> {
  await store.put(Readable.from([Buffer.from(json, 'utf8')]), { expectedDigest: digestOf(json) });
}

/** The legacy chain (legacyChain), its jsons stored: what a later build needs to reuse these layers as they are. */
export async function storeLegacyChain(store: BlobStore, fields: LegacyLayerFields, layers: ReadonlyArray<{ diffId: Digest; size: number; tarsum: string }>, parent?: string): Promise<Layer[]> {
  const chain = legacyChain(fields, layers, parent);
  for (const { json } of chain) await storeLegacyJson(store, json);
  return chain.map((c) => c.layer);
}
