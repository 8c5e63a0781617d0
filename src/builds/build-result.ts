import type { Digest } from '../digest.ts';
import type { StoredImage } from '../image/image.ts';
import type { ArchiveInfo } from './build-archive.ts';

/** The image a build stored (its config and legacy jsons too: a later build may use it as its base), and its archive. */
export interface BuildResult extends StoredImage {
  diffIds: Digest[];
  archive: ArchiveInfo;
}

/** Every blob a build result is made of: config, layers, legacy jsons, archive parts. */
export function blobsOfResult(result: BuildResult): Digest[] {
  return [result.imageId, ...result.diffIds, ...(result.layers ?? []).flatMap((l) => [l.diffId, l.v1Json]), ...(result.archive.parts ?? [])];
}
