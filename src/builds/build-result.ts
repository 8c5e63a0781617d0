import type { Digest } from '../digest.ts';
import type { StoredLayer } from '../image/sources/earlier-build.ts';
import type { ArchiveInfo } from './build-archive.ts';

/** What a build made: its image (config and layers, as stored) and its archive. */
export interface BuildResult {
  /** The config digest; the config itself is stored as a blob under it. */
  imageId: Digest;
  diffIds: Digest[];
  layers: StoredLayer[];
  archive: ArchiveInfo;
}

/** Every blob a build result is made of: config, layers, legacy jsons, archive parts. */
export function blobsOfResult(result: BuildResult): Digest[] {
  return [result.imageId, ...result.diffIds, ...(result.layers ?? []).flatMap((l) => [l.diffId, l.v1Json]), ...(result.archive.parts ?? [])];
}
