import { describeOutput, indexOutput } from '../builds/build-archive.ts';
import type { BuildResult } from '../builds/build-result.ts';
import type { ResolvedSpec } from '../builds/spec.ts';
import type { InTotoPredicate } from '../image/sinks/attestation-manifest.ts';
import { loadImage } from '../image/stored-image.ts';
import type { BlobStore } from '../store/blob-store.ts';
import { archivePredicates } from './archive-attestations.ts';

/**
 * A multi-platform build's result with its index archive described again now that its
 * images are attested: the archive's image index lists each image's attestation manifest
 * (archive-attestations.ts), so the digest and size the result records must be of those
 * bytes. The build described the archive before attesting (attesting reads the stored layers
 * the build made, outside the build's sandbox), so this reads it once more.
 *
 * A single image's `oci-archive` (a single-platform build's, one platform's) stays as it is:
 * its `index.json` names the image alone, and a second entry there makes readers that take
 * the only image (`podman load`, `skopeo copy oci-archive:FILE`) refuse it ("more than one
 * image"); wrapping the image in an index instead makes `umoci` refuse its tag as ambiguous
 * and changes what `skopeo inspect --raw` gives.
 */
export async function describeAttestedArchives(result: BuildResult, spec: ResolvedSpec, store: BlobStore): Promise<BuildResult> {
  const { platforms } = result;
  if (!platforms?.some((p) => p.attestations) || result.archive.format !== 'oci-archive') return result;
  const predicates: Array<InTotoPredicate[] | undefined> = [];
  for (const image of platforms) predicates.push(image.attestations ? await archivePredicates(image.attestations, store) : undefined);
  const images = [];
  for (const image of platforms) images.push(await loadImage(store, image));
  const out = await indexOutput(images, spec, result.archive.compression, store, predicates);
  return { ...result, archive: await describeOutput(out, 'oci-archive', result.archive.compression, store) };
}
