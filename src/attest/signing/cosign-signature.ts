import { type Digest, hexOf } from '../../digest.ts';
import { canonicalJson } from '../../image/canonical-json.ts';
import { cosignImage, type PushableImage } from './cosign-image.ts';
import type { SigningKey } from './signing-key.ts';

/** The media type of the layer holding a cosign simple-signing payload. */
export const COSIGN_SIMPLE_SIGNING_MEDIA_TYPE = 'application/vnd.dev.cosign.simplesigning.v1+json';
/** The layer annotation holding the payload's signature (base64). */
export const COSIGN_SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature';

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

/**
 * The signature image cosign pushes under `signatureTag`: one layer, the payload, with its
 * signature in the layer's annotation.
 */
export function signatureImage(payload: Buffer, signature: string): PushableImage {
  return cosignImage([{ bytes: payload, mediaType: COSIGN_SIMPLE_SIGNING_MEDIA_TYPE, annotations: { [COSIGN_SIGNATURE_ANNOTATION]: signature } }]);
}
