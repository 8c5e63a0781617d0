import { digestOf, hexOf, type Digest } from '../../digest.ts';
import { canonicalJson } from '../canonical-json.ts';
import { OCI_MEDIA_TYPES, type LayoutBlob } from './oci-archive.ts';

/**
 * An image's attestations as an OCI layout holds them, in the layout BuildKit writes
 * (docs/attestations/attestation-storage.md in moby/buildkit), so `docker buildx imagetools`,
 * Docker Scout and other readers of BuildKit's layout find them: beside each image manifest
 * in the index, an "attestation manifest" (an OCI image manifest, platform `unknown/unknown`,
 * pointing back at the image by `vnd.docker.reference.digest`) whose layers are in-toto
 * statements about that image.
 */

export const IN_TOTO_LAYER_MEDIA_TYPE = 'application/vnd.in-toto+json';
/** in-toto Statement v1: what baler's provenance already is (attest/provenance/statement.ts). */
const IN_TOTO_STATEMENT_TYPE = 'https://in-toto.io/Statement/v1';
const ANNOTATION_PREDICATE_TYPE = 'in-toto.io/predicate-type';
const ANNOTATION_REFERENCE_TYPE = 'vnd.docker.reference.type';
const ANNOTATION_REFERENCE_DIGEST = 'vnd.docker.reference.digest';
const REFERENCE_TYPE_ATTESTATION = 'attestation-manifest';

/** One statement's content, without its subject: the layout names the image manifest it is about. */
export interface InTotoPredicate {
  predicateType: string;
  /** Parsed JSON; written as canonical JSON, so the same predicate always gives the same bytes. */
  predicate: unknown;
}

/** An attestation manifest planned: its blobs (statements, config, manifest) and its entry in the index. */
export interface AttestationManifest {
  blobs: LayoutBlob[];
  descriptor: {
    mediaType: string;
    digest: Digest;
    size: number;
    platform: { architecture: 'unknown'; os: 'unknown' };
    annotations: Record<string, string>;
  };
}

const held = (json: string): LayoutBlob & { bytes: Buffer } => {
  const bytes = Buffer.from(json, 'utf8');
  return { digest: digestOf(bytes), size: bytes.length, bytes };
};

/**
 * The attestation manifest of the image whose manifest is `imageManifest`: each predicate as
 * a full in-toto statement whose subject is that manifest's digest (as BuildKit stores them:
 * the statement itself, unsigned, not a DSSE envelope), and the config BuildKit writes for
 * compatibility (`unknown/unknown`, the statements as its diff_ids). Canonical JSON
 * throughout: the same image and predicates give the same bytes.
 */
export function planAttestationManifest(imageManifest: Digest, subjectName: string, predicates: readonly InTotoPredicate[]): AttestationManifest {
  const statements = predicates.map(({ predicateType, predicate }) => ({
    predicateType,
    blob: held(
      canonicalJson({
        _type: IN_TOTO_STATEMENT_TYPE,
        subject: [{ name: subjectName, digest: { sha256: hexOf(imageManifest) } }],
        predicateType,
        predicate,
      }),
    ),
  }));
  const config = held(canonicalJson({ architecture: 'unknown', os: 'unknown', config: {}, rootfs: { type: 'layers', diff_ids: statements.map((s) => s.blob.digest) } }));
  const manifest = held(
    canonicalJson({
      schemaVersion: 2,
      mediaType: OCI_MEDIA_TYPES.manifest,
      config: { mediaType: OCI_MEDIA_TYPES.config, digest: config.digest, size: config.size },
      layers: statements.map(({ predicateType, blob }) => ({
        mediaType: IN_TOTO_LAYER_MEDIA_TYPE,
        digest: blob.digest,
        size: blob.size,
        annotations: { [ANNOTATION_PREDICATE_TYPE]: predicateType },
      })),
    }),
  );
  return {
    blobs: [...statements.map((s) => s.blob), config, manifest],
    descriptor: {
      mediaType: OCI_MEDIA_TYPES.manifest,
      digest: manifest.digest,
      size: manifest.size,
      platform: { architecture: 'unknown', os: 'unknown' },
      annotations: { [ANNOTATION_REFERENCE_DIGEST]: imageManifest, [ANNOTATION_REFERENCE_TYPE]: REFERENCE_TYPE_ATTESTATION },
    },
  };
}

/** BuildKit's subject name for an image: `pkg:docker/<name>@<tag>?platform=<os/arch>` (a package URL). */
export function imageSubjectName(fullName: string, tag: string, platform: { os: string; architecture: string; variant?: string }): string {
  const p = [platform.os, platform.architecture, platform.variant].filter(Boolean).join('/');
  return `pkg:docker/${fullName}@${tag}?platform=${encodeURIComponent(p)}`;
}
