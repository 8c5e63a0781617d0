import { type Digest, digestOf, hexOf } from '../../digest.ts';
import { canonicalJson } from '../../image/canonical-json.ts';
import type { SigningKey } from './signing-key.ts';

/** The media type of the layer holding a cosign simple-signing payload. */
export const COSIGN_SIMPLE_SIGNING_MEDIA_TYPE = 'application/vnd.dev.cosign.simplesigning.v1+json';
/** The layer annotation holding the payload's signature (base64). */
export const COSIGN_SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature';
const OCI_MANIFEST_MEDIA_TYPE = 'application/vnd.oci.image.manifest.v1+json';
const OCI_CONFIG_MEDIA_TYPE = 'application/vnd.oci.image.config.v1+json';
/** The time cosign gives its signature images (go-containerregistry's empty image). */
const ZERO_TIME = '0001-01-01T00:00:00Z';

/**
 * cosign's key-based "simple signing" payload for an image manifest: what `cosign verify --key`
 * checks the signature of, and then that the digest and the repository are the image's.
 * `dockerReference` is the repository as cosign names it: `registry/path`, no tag or digest.
 */
export function simpleSigningPayload(manifestDigest: Digest, dockerReference: string): Buffer {
  // Sorted keys already, the byte order cosign writes; `optional: null` as cosign sends it.
  const payload = {
    critical: {
      identity: { 'docker-reference': dockerReference },
      image: { 'docker-manifest-digest': manifestDigest },
      type: 'cosign container image signature',
    },
    optional: null,
  };
  return Buffer.from(canonicalJson(payload), 'utf8');
}

/** The signature of a payload, base64, as the annotation holds it (over the payload's bytes). */
export function cosignSignature(payload: Buffer, key: SigningKey): string {
  return key.sign(payload).toString('base64');
}

/** The tag cosign looks for an image's signatures under: `sha256-<hex>.sig`. */
export function signatureTag(manifestDigest: Digest): string {
  return `sha256-${hexOf(manifestDigest)}.sig`;
}

/** The tag cosign looks for an image's attestations under: `sha256-<hex>.att`. */
export function attestationTag(manifestDigest: Digest): string {
  return `sha256-${hexOf(manifestDigest)}.att`;
}

/** A small image to push: its manifest and the blobs it names, each with its digest. */
export interface PushableImage {
  manifest: Buffer;
  manifestDigest: Digest;
  mediaType: typeof OCI_MANIFEST_MEDIA_TYPE;
  blobs: Array<{ digest: Digest; bytes: Buffer; mediaType: string }>;
}

/**
 * The signature image cosign pushes under `signatureTag`: one layer, the payload, with its
 * signature in the layer's annotation; a config listing that layer, as cosign's has.
 * Pure: pushing it (blobs first, then the manifest under the tag) is the registry client's.
 */
export function signatureImage(payload: Buffer, signature: string): PushableImage {
  const payloadDigest = digestOf(payload);
  const config = Buffer.from(
    canonicalJson({
      architecture: '',
      config: {},
      created: ZERO_TIME,
      history: [{ created: ZERO_TIME }],
      os: '',
      rootfs: { type: 'layers', diff_ids: [payloadDigest] },
    }),
    'utf8',
  );
  const configDigest = digestOf(config);
  const manifest = Buffer.from(
    canonicalJson({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST_MEDIA_TYPE,
      config: { mediaType: OCI_CONFIG_MEDIA_TYPE, size: config.length, digest: configDigest },
      layers: [
        {
          mediaType: COSIGN_SIMPLE_SIGNING_MEDIA_TYPE,
          size: payload.length,
          digest: payloadDigest,
          annotations: { [COSIGN_SIGNATURE_ANNOTATION]: signature },
        },
      ],
    }),
    'utf8',
  );
  return {
    manifest,
    manifestDigest: digestOf(manifest),
    mediaType: OCI_MANIFEST_MEDIA_TYPE,
    blobs: [
      { digest: configDigest, bytes: config, mediaType: OCI_CONFIG_MEDIA_TYPE },
      { digest: payloadDigest, bytes: payload, mediaType: COSIGN_SIMPLE_SIGNING_MEDIA_TYPE },
    ],
  };
}
