import type { Attested } from '../attest/image-attestations.ts';
import type { Digest } from '../digest.ts';
import type { StoredImage } from '../image/image.ts';
import type { ArchiveInfo } from './build-archive.ts';

/** One platform's image of a multi-platform build: what a single-platform build of it gives, and its manifest in the index. */
export interface PlatformImage extends StoredImage, Attested {
  platform: string;
  diffIds: Digest[];
  /** Its OCI manifest, as the index names it. */
  manifest: { digest: Digest; size: number };
  /** Its own single-image oci-archive (`?platform=…&format=oci-archive`). */
  archive: ArchiveInfo;
  base?: { imageId: Digest };
}

/**
 * The image a build stored (its config and legacy jsons too: a later build may use it as its
 * base), and its archive. A multi-platform build has `index` and `platforms` too: its image,
 * layers and archive at the top are then its first platform's image and the index's archive.
 */
export interface BuildResult extends StoredImage, Attested {
  diffIds: Digest[];
  archive: ArchiveInfo;
  /** The base image as the build used it (after the device rule): its image id. A multi-platform build's is on each platform. */
  base?: { imageId: Digest };
  /**
   * The OCI image index over `platforms` (stored as a blob; what a push tags). The `oci-archive`
   * of an attested build holds an index that also lists the images' SBOMs (attested-archives.ts).
   */
  index?: { digest: Digest; size: number; mediaType: string };
  platforms?: PlatformImage[];
}

/**
 * The image of `platform` a build's result holds: a multi-platform build's image of that
 * platform (null when it has none), a single-platform build's one image.
 */
export function imageOfPlatform(result: BuildResult, platform: string): StoredImage | null {
  if (!result.platforms) return result;
  return result.platforms.find((p) => p.platform === platform) ?? null;
}

/** Every blob a build result is made of: config, layers, legacy jsons, archive parts, attestations; each platform's and the index. */
export function blobsOfResult(result: BuildResult): Digest[] {
  const own = (r: Omit<BuildResult, 'platforms' | 'index'>): Digest[] => [
    r.imageId,
    ...r.diffIds,
    ...(r.layers ?? []).flatMap((l) => [l.diffId, l.v1Json]),
    ...(r.archive.parts ?? []),
    ...(r.attestations ? Object.values(r.attestations) : []),
  ];
  return [...own(result), ...(result.platforms ?? []).flatMap(own), ...(result.index ? [result.index.digest] : [])];
}
