import type { Digest } from '../../digest.ts';

export const OCI_MEDIA_TYPES = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
} as const;

/** A blob of the layout, ready to be written at `blobs/sha256/<hex>`. */
export interface LayoutBlob {
  digest: Digest;
  size: number;
  /** Held bytes (config, manifest); absent for layer blobs, which are read from the store. */
  bytes?: Buffer;
}
