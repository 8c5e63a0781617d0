import type { ArchiveInfo } from '../builds/build-archive.ts';
import type { BuildRecord } from '../builds/build-record.ts';
import type { BuildResult } from '../builds/build-result.ts';
import { hostPlatform, platformOfArchitecture } from '../builds/platforms.ts';
import type { StoredImage } from '../image/image.ts';
import { Problem } from '../problem.ts';

/** What an image download sends: the index of every platform, or one image (with its own archive, for the ETag). */
export type DownloadTarget = { index: BuildResult & { platforms: NonNullable<BuildResult['platforms']> } } | { image: StoredImage; archive: ArchiveInfo };

/**
 * The image a download of `format` asks for. A multi-platform build's `oci-archive` without
 * `?platform=` is its index; any other download is one platform's image: `?platform=`, else
 * this host's platform (400 naming the build's platforms when it has none for this host). A
 * platform the build lacks is 404, naming those it has.
 */
export function downloadTarget(record: BuildRecord & { result: BuildResult }, format: string, platform: string | undefined): DownloadTarget {
  const { result } = record;
  const { platforms } = result;
  if (!platforms) {
    const own = platformOfArchitecture(record.spec.architecture);
    if (platform !== undefined && platform !== own) throw new Problem(404, `build ${record.id} has no image for ${platform}; it has ${own}`);
    return { image: result, archive: result.archive };
  }
  if (platform === undefined && format === 'oci-archive') return { index: { ...result, platforms } };
  const names = platforms.map((p) => p.platform).join(', ');
  const wanted = platform ?? hostPlatform();
  const found = platforms.find((p) => p.platform === wanted);
  if (found) return { image: found, archive: found.archive };
  if (platform === undefined) throw new Problem(400, `build ${record.id} has no image for this host's platform ${wanted}; ask for one with ?platform= (${names})`);
  throw new Problem(404, `build ${record.id} has no image for ${platform}; it has ${names}`);
}
