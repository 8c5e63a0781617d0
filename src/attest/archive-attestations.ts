import { buffer } from 'node:stream/consumers';
import type { Digest } from '../digest.ts';
import type { InTotoPredicate } from '../image/sinks/attestation-manifest.ts';
import type { BlobStore } from '../store/blob-store.ts';
import { ATTESTATION_PAYLOAD_TYPES, type ImageAttestations } from './image-attestations.ts';

/** SPDX's predicate type for an in-toto statement carrying an SPDX document (what BuildKit's SBOMs use). */
export const SPDX_PREDICATE_TYPE = 'https://spdx.dev/Document';

/** What a stored envelope may be when an archive holds it: the worker wrote it, but nothing is read unbounded. */
const MAX_ENVELOPE_BYTES = 256 * 1024 ** 2;

/**
 * What an image's `oci-archive` holds of its attestations (sinks/attestation-manifest.ts): its
 * SPDX SBOM and its provenance, as predicates; the archive writes each as a statement about
 * the image manifest it holds. The stored SPDX envelope holds the bare document, the
 * provenance envelope a whole statement (whose predicate is kept, its subject written anew:
 * a single-platform build's names the image id, and the manifest depends on the compression
 * asked for). CycloneDX stays out, as BuildKit writes SPDX only. A build-cache hit's archive is
 * the original's, byte for byte: it holds the provenance it was made with (`archivedProvenance`).
 */
export async function archivePredicates(attestations: ImageAttestations, store: BlobStore): Promise<InTotoPredicate[]> {
  const spdx = await storedPayload(store, attestations.sbomSpdx, ATTESTATION_PAYLOAD_TYPES.sbomSpdx);
  const provenance = (await storedPayload(store, attestations.archivedProvenance ?? attestations.provenance, ATTESTATION_PAYLOAD_TYPES.provenance)) as {
    predicateType?: unknown;
    predicate?: unknown;
  };
  if (typeof provenance.predicateType !== 'string' || provenance.predicate === undefined) throw new Error('the stored provenance is not an in-toto statement');
  return [
    { predicateType: SPDX_PREDICATE_TYPE, predicate: spdx },
    { predicateType: provenance.predicateType, predicate: provenance.predicate },
  ];
}

/** An envelope's payload, parsed, after checking its payload type. */
async function storedPayload(store: BlobStore, digest: Digest, payloadType: string): Promise<unknown> {
  const info = await store.stat(digest);
  if (!info) throw new Error(`attestation ${digest} is no longer stored`);
  if (info.size > MAX_ENVELOPE_BYTES) throw new Error(`attestation ${digest} is ${info.size} bytes, over ${MAX_ENVELOPE_BYTES}`);
  const envelope = JSON.parse((await buffer(await store.open(digest))).toString('utf8')) as { payloadType?: unknown; payload?: unknown };
  if (envelope.payloadType !== payloadType || typeof envelope.payload !== 'string') throw new Error(`attestation ${digest} is not a DSSE envelope of ${payloadType}`);
  return JSON.parse(Buffer.from(envelope.payload, 'base64').toString('utf8')) as unknown;
}
