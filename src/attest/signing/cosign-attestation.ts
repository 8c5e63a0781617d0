import { type Digest, digestOf } from '../../digest.ts';
import { canonicalJson } from '../../image/canonical-json.ts';
import { COSIGN_SIGNATURE_ANNOTATION, type PushableImage } from './cosign-signature.ts';

/** The media type of a layer holding a DSSE envelope, as cosign writes attestations. */
export const DSSE_ENVELOPE_MEDIA_TYPE = 'application/vnd.dsse.envelope.v1+json';
const OCI_MANIFEST_MEDIA_TYPE = 'application/vnd.oci.image.manifest.v1+json';
const OCI_CONFIG_MEDIA_TYPE = 'application/vnd.oci.image.config.v1+json';
/** OCI 1.1's empty config of an artifact manifest: the two bytes `{}`. */
const OCI_EMPTY_MEDIA_TYPE = 'application/vnd.oci.empty.v1+json';
const ZERO_TIME = '0001-01-01T00:00:00Z';

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

function layerDescriptors(layers: readonly AttestationLayer[], withCosignAnnotation: boolean) {
  return layers.map((l) => ({
    mediaType: DSSE_ENVELOPE_MEDIA_TYPE,
    size: l.envelope.length,
    digest: digestOf(l.envelope),
    // cosign gives attestation layers an empty signature annotation (the signature is in the envelope).
    annotations: withCosignAnnotation ? { [COSIGN_SIGNATURE_ANNOTATION]: '', predicateType: l.predicateType } : { predicateType: l.predicateType },
  }));
}

function layerBlobs(layers: readonly AttestationLayer[]): PushableImage['blobs'] {
  const blobs: PushableImage['blobs'] = [];
  for (const l of layers) {
    const digest = digestOf(l.envelope);
    if (!blobs.some((b) => b.digest === digest)) blobs.push({ digest, bytes: l.envelope, mediaType: DSSE_ENVELOPE_MEDIA_TYPE });
  }
  return blobs;
}

/**
 * The image cosign pushes under `sha256-<hex>.att`: one layer per attestation, each a DSSE
 * envelope annotated with its predicate type, and a config listing those layers as cosign's
 * has. What `cosign verify-attestation --key` and `cosign download attestation` read.
 */
export function attestationImage(layers: readonly AttestationLayer[]): PushableImage {
  const descriptors = layerDescriptors(layers, true);
  const config = Buffer.from(
    canonicalJson({
      architecture: '',
      config: {},
      created: ZERO_TIME,
      history: descriptors.map(() => ({ created: ZERO_TIME })),
      os: '',
      rootfs: { type: 'layers', diff_ids: descriptors.map((d) => d.digest) },
    }),
    'utf8',
  );
  const configDigest = digestOf(config);
  const manifest = Buffer.from(
    canonicalJson({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST_MEDIA_TYPE,
      config: { mediaType: OCI_CONFIG_MEDIA_TYPE, size: config.length, digest: configDigest },
      layers: descriptors,
    }),
    'utf8',
  );
  return {
    manifest,
    manifestDigest: digestOf(manifest),
    mediaType: OCI_MANIFEST_MEDIA_TYPE,
    blobs: [{ digest: configDigest, bytes: config, mediaType: OCI_CONFIG_MEDIA_TYPE }, ...layerBlobs(layers)],
  };
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
      layers: layerDescriptors(layers, false),
      subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
    }),
    'utf8',
  );
  return {
    manifest,
    manifestDigest: digestOf(manifest),
    mediaType: OCI_MANIFEST_MEDIA_TYPE,
    blobs: [{ digest: emptyDigest, bytes: empty, mediaType: OCI_EMPTY_MEDIA_TYPE }, ...layerBlobs(layers)],
  };
}
