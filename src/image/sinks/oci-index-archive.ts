import { digestOf, type Digest } from '../../digest.ts';
import { canonicalJson } from '../canonical-json.ts';
import type { Image } from '../image.ts';
import { imageSubjectName, planAttestationManifest, type AttestationManifest, type InTotoPredicate } from './attestation-manifest.ts';
import {
  distinctBlobs,
  fullyQualifiedName,
  layoutEntries,
  OCI_ARCHIVE_MEDIA_TYPE,
  OCI_MEDIA_TYPES,
  planImageManifest,
  refAnnotations,
  splitRefName,
  type ImageManifest,
  type LayoutBlob,
  type OciArchiveOptions,
} from './oci-archive.ts';
import { epochOf, plannedTar, type SinkOutput } from './tar-plan.ts';

/** As for one image, with each image's attestations (by the images' order; absent or empty: none for it). */
export interface OciIndexArchiveOptions extends OciArchiveOptions {
  attestations?: ReadonlyArray<readonly InTotoPredicate[] | undefined>;
}

/** An image index over several images (one per platform), and the images' manifests. */
export interface OciIndexLayout {
  blobs: LayoutBlob[];
  /** The image index: the manifest a registry tag or the layout's ref name points at. */
  index: { digest: Digest; size: number; json: string };
  /** Every image's manifest, in the index's order. */
  images: ImageManifest[];
  /** The layout's own `index.json`, naming the image index by `name:tag`. */
  indexJson: string;
  mtime: number;
}

/**
 * Lay several images out as one OCI image index: each image's manifest as `oci-archive`
 * writes it (the same bytes, so the same digest), an image index naming them by platform in
 * the order given, and the layout's `index.json` naming that index by `name:tag` (as
 * `buildah manifest push oci-archive:` and buildx write a multi-platform layout). With
 * `attestations`, the image index lists each image's attestation manifest after the images
 * (attestation-manifest.ts), as BuildKit does; that index is then not the one without them (what
 * a build stores and a push tags). All canonical JSON: the same images and options give the
 * same bytes.
 */
export async function planOciIndexLayout(images: Image[], opts: OciIndexArchiveOptions): Promise<OciIndexLayout> {
  const { name, tag } = splitRefName(opts.refName);
  const planned: ImageManifest[] = [];
  for (const image of images) planned.push(await planImageManifest(image, opts));
  const created = opts.created ?? planned[0]?.created;
  if (!created) throw new Error('the image config has no created time; pass created');
  // Attestation manifests after every runnable manifest, in the images' order (BuildKit's layout).
  const attested = planned.flatMap((p, i) => attestationManifestOf(p, name, tag, opts.attestations?.[i]) ?? []);
  const indexJson = canonicalJson({
    schemaVersion: 2,
    mediaType: OCI_MEDIA_TYPES.index,
    manifests: [...planned.map(({ manifest, platform }) => ({ mediaType: OCI_MEDIA_TYPES.manifest, digest: manifest.digest, size: manifest.size, platform })), ...attested.map((a) => a.descriptor)],
  });
  const indexBytes = Buffer.from(indexJson, 'utf8');
  const index = { digest: digestOf(indexBytes), size: indexBytes.length, json: indexJson };
  return {
    blobs: distinctBlobs([...planned.flatMap((p) => p.blobs), ...attested.flatMap((a) => a.blobs), { ...index, bytes: indexBytes }]),
    index,
    images: planned,
    indexJson: canonicalJson({
      schemaVersion: 2,
      mediaType: OCI_MEDIA_TYPES.index,
      manifests: [{ mediaType: OCI_MEDIA_TYPES.index, digest: index.digest, size: index.size, annotations: refAnnotations(name, tag) }],
    }),
    mtime: epochOf(created),
  };
}

/** The attestation manifest of a planned image, its statements' subject its manifest; none without attestations. */
function attestationManifestOf(planned: ImageManifest, name: string, tag: string, attestations: readonly InTotoPredicate[] | undefined): AttestationManifest | undefined {
  if (!attestations || attestations.length === 0) return undefined;
  return planAttestationManifest(planned.manifest.digest, imageSubjectName(fullyQualifiedName(name), tag, planned.platform), attestations);
}

/**
 * Several images as one `oci-archive` whose ref names their image index: the layout in a
 * tar, deterministic, blobs streamed from the store (every compressed layer stored first).
 */
export async function writeOciIndexArchive(images: Image[], opts: OciIndexArchiveOptions): Promise<{ output: SinkOutput; layout: OciIndexLayout }> {
  const layout = await planOciIndexLayout(images, opts);
  return { output: plannedTar(layoutEntries(layout), opts.store, OCI_ARCHIVE_MEDIA_TYPE), layout };
}
