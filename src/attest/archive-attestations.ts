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
 * SPDX SBOM, as the predicate of a statement the archive writes about the image manifest it
 * holds (the stored envelope holds the bare document). Only what the build's inputs decide
 * goes in, so the same spec still gives the same archive bytes (a build-cache hit, a rebuild,
 * `verify`): the provenance names the build (its id, times, worker) and would make every
 * build's archive different, so it stays at /provenance and on pushes. CycloneDX stays out
 * too, as BuildKit writes SPDX only.
 */
export async function archivePredicates(attestations: ImageAttestations, store: BlobStore): Promise<InTotoPredicate[]> {
  return [{ predicateType: SPDX_PREDICATE_TYPE, predicate: await storedPayload(store, attestations.sbomSpdx, ATTESTATION_PAYLOAD_TYPES.sbomSpdx) }];
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
