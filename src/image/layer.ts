import type { Readable } from 'node:stream';
import type { Digest } from '../digest.ts';

export const MEDIA_TYPE_DOCKER_LAYER = 'application/vnd.docker.image.rootfs.diff.tar';

/** One layer of an image, in the spirit of go-containerregistry's v1.Layer. */
export interface Layer {
  /** sha256 of the uncompressed tar (what `rootfs.diff_ids` lists). */
  diffId: Digest;
  /** sha256 of the blob as stored. */
  digest: Digest;
  size: number;
  mediaType: string;
  open(): Promise<Readable>;
}
