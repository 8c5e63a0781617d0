import type { Digest } from '../digest.ts';

/** Where an image's attestations are stored: each a blob holding a DSSE envelope (JSON). */
export interface ImageAttestations {
  sbomSpdx: Digest;
  sbomCycloneDx: Digest;
  provenance: Digest;
}

/** The DSSE payload types of the three, which are also the media types the API serves their payloads as. */
export const ATTESTATION_PAYLOAD_TYPES = {
  sbomSpdx: 'application/spdx+json',
  sbomCycloneDx: 'application/vnd.cyclonedx+json',
  provenance: 'application/vnd.in-toto+json',
} as const satisfies Record<keyof ImageAttestations, string>;

/** What a build says of an image's attestations: where they are, or why it has none. */
export interface Attested {
  attestations?: ImageAttestations;
  /** Set instead of `attestations` when they could not be made (the image itself is fine). */
  attestationError?: string;
}
