import { describeOutput, imageOutput, indexOutput, type ArchiveInfo } from '../builds/build-archive.ts';
import type { BuildResult } from '../builds/build-result.ts';
import type { ResolvedSpec } from '../builds/spec.ts';
import type { LayerBudgets } from '../image/build-usage.ts';
import type { InTotoPredicate } from '../image/sinks/attestation-manifest.ts';
import { loadImage } from '../image/stored-image.ts';
import type { StoredImage } from '../image/image.ts';
import type { BlobStore } from '../store/blob-store.ts';
import { archivePredicates } from './archive-attestations.ts';
import type { Attested } from './image-attestations.ts';

/**
 * The result with each `oci-archive` it records described again now that its images are
 * attested: a download of an attested image's `oci-archive` holds its attestations
 * (archive-attestations.ts), so the digest and size the result records must be of those
 * bytes. The build described its archives before attesting (attesting reads the stored
 * layers the build made, and runs outside the build's sandbox), so this reads each such
 * archive once more. Other formats, and images without attestations, are kept as they are.
 */
export async function describeAttestedArchives(result: BuildResult, spec: ResolvedSpec, store: BlobStore, layerBudgets?: LayerBudgets): Promise<BuildResult> {
  const predicatesOf = (image: Attested) => (image.attestations ? archivePredicates(image.attestations, store) : undefined);
  const again = async (image: StoredImage & Attested, archive: ArchiveInfo): Promise<ArchiveInfo> => {
    if (archive.format !== 'oci-archive' || !image.attestations) return archive;
    const out = await imageOutput(await loadImage(store, image), spec, 'oci-archive', archive.compression, store, layerBudgets, await predicatesOf(image));
    return describeOutput(out, 'oci-archive', archive.compression, store);
  };
  if (!result.platforms) return { ...result, archive: await again(result, result.archive) };

  const platforms = [];
  for (const image of result.platforms) platforms.push({ ...image, archive: await again(image, image.archive) });
  if (!platforms.some((p) => p.attestations)) return { ...result, platforms };
  const predicates: Array<InTotoPredicate[] | undefined> = [];
  for (const image of platforms) predicates.push(await predicatesOf(image));
  const images = [];
  for (const image of platforms) images.push(await loadImage(store, image));
  const out = await indexOutput(images, spec, result.archive.compression, store, predicates);
  return { ...result, archive: await describeOutput(out, 'oci-archive', result.archive.compression, store), platforms };
}
