import type { Digest } from '../digest.ts';

/**
 * One layer of an image, in the spirit of go-containerregistry's v1.Layer for layers kept one
 * way: the store holds every layer uncompressed under its diff_id (`store.open(diffId)` reads
 * it; a sink compresses it as its format needs, layer-compression.ts), with the legacy (v1)
 * metadata docker-archive lists for it. Plain data: it goes into build records, caches and
 * indexes as JSON (BuildResult.layers in openapi.yaml).
 */
export interface Layer {
  /** sha256 of the uncompressed tar (what `rootfs.diff_ids` lists), and so of its blob. */
  diffId: Digest;
  size: number;
  /** Legacy tarsum.v1 checksum (the legacy json's `checksum`). */
  tarsum: string;
  /** Legacy layer id: docker-archive's `<v1Id>/layer.tar`. */
  v1Id: string;
  /** Blob holding the legacy layer json. */
  v1Json: Digest;
}

/** A layer just made, before it has a place (and so a legacy id) in an image. */
export interface NewLayer {
  diffId: Digest;
  size: number;
  tarsum: string;
  /** The image history's `created_by` for it. */
  createdBy: string;
}
