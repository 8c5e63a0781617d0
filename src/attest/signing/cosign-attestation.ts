import { type Digest, digestOf } from '../../digest.ts';
import { canonicalJson } from '../../image/canonical-json.ts';
import { type CosignLayer, cosignImage, layerDescriptors, OCI_MANIFEST_MEDIA_TYPE, type PushableImage, uniqueBlobs } from './cosign-image.ts';
import { COSIGN_SIGNATURE_ANNOTATION } from './cosign-signature.ts';

/** The media type of a layer holding a DSSE envelope, as cosign writes attestations. */
export const DSSE_ENVELOPE_MEDIA_TYPE = 'application/vnd.dsse.envelope.v1+json';
/** OCI 1.1's empty config of an artifact manifest: the two bytes `{}`. */
const OCI_EMPTY_MEDIA_TYPE = 'application/vnd.oci.empty.v1+json';

/** One attestation to push: its DSSE envelope (JSON bytes) and the in-toto predicate type it carries. */
export interface AttestationLayer {
  envelope: Buffer;
  predicateType: string;
}

/** The manifest the referrer names as its subject. */
export interface SubjectDescriptor {
  mediaType: string;
  digest: Digest;
  size: number;
}

function cosignLayers(layers: readonly AttestationLayer[], withCosignAnnotation: boolean): CosignLayer[] {
  return layers.map((l) => {
    const annotations: Record<string, string> = { predicateType: l.predicateType };
    // cosign gives attestation layers an empty signature annotation (the signature is in the envelope).
    if (withCosignAnnotation) annotations[COSIGN_SIGNATURE_ANNOTATION] = '';
    return { bytes: l.envelope, mediaType: DSSE_ENVELOPE_MEDIA_TYPE, annotations };
  });
}

/**
 * The image cosign pushes under `sha256-<hex>.att`: one layer per attestation, each a DSSE
 * envelope annotated with its predicate type. What `cosign verify-attestation --key` and
 * `cosign download attestation` read.
 */
export function attestationImage(layers: readonly AttestationLayer[]): PushableImage {
  return cosignImage(cosignLayers(layers, true));
}

/**
 * The same attestations as an OCI 1.1 artifact manifest whose `subject` is the image manifest:
 * what the referrers API (`GET /v2/<name>/referrers/<digest>`) lists for the image. Pushed by digest.
 */
export function referrerManifest(layers: readonly AttestationLayer[], subject: SubjectDescriptor): PushableImage {
  const empty = Buffer.from('{}', 'utf8');
  const emptyDigest = digestOf(empty);
  const manifest = Buffer.from(
    canonicalJson({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST_MEDIA_TYPE,
      artifactType: DSSE_ENVELOPE_MEDIA_TYPE,
      config: { mediaType: OCI_EMPTY_MEDIA_TYPE, size: empty.length, digest: emptyDigest },
      layers: layerDescriptors(cosignLayers(layers, false)),
      subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
    }),
    'utf8',
  );
  return {
    manifest,
    manifestDigest: digestOf(manifest),
    mediaType: OCI_MANIFEST_MEDIA_TYPE,
    blobs: [{ digest: emptyDigest, bytes: empty, mediaType: OCI_EMPTY_MEDIA_TYPE }, ...uniqueBlobs(cosignLayers(layers, false))],
  };
}
