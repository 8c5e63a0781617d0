/**
 * An image's stored attestations, made about the manifest a push put up: cosign and in-toto
 * verifiers check that a statement's subject is the image they verify, and the stored ones may
 * name another digest (a single-platform build's provenance names its config digest, since its
 * manifest is only fixed by how it is pushed). Each becomes an in-toto statement whose subject is
 * the pushed manifest, in a DSSE envelope signed with the operator's key when there is one.
 */
import { buffer } from 'node:stream/consumers';
import { type Digest, hexOf } from '../digest.ts';
import { canonicalJson } from '../image/canonical-json.ts';
import type { BlobStore } from '../store/blob-store.ts';
import type { ImageAttestations } from './image-attestations.ts';
import { IN_TOTO_PAYLOAD_TYPE, IN_TOTO_STATEMENT_TYPE, SLSA_PROVENANCE_PREDICATE_TYPE } from './provenance/statement.ts';
import type { AttestationLayer } from './signing/cosign-attestation.ts';
import { type DsseEnvelope, dsseEnvelope } from './signing/dsse.ts';
import type { SigningKey } from './signing/signing-key.ts';

/** The predicate types cosign gives SBOM attestations (`cosign attest --type spdxjson|cyclonedx`). */
export const SPDX_PREDICATE_TYPE = 'https://spdx.dev/Document';
export const CYCLONEDX_PREDICATE_TYPE = 'https://cyclonedx.org/bom';
/** The worker wrote these envelopes, but a push never reads an unbounded blob into memory. */
const MAX_ENVELOPE_BYTES = 64 * 1024 ** 2;

/**
 * The three attestations of an image as statements about `subject` (the pushed manifest, named
 * as `name`, the pushed repository): the provenance as stored when it already names that digest
 * (same bytes, same signature), else the same predicate restated and signed now; each SBOM as
 * the predicate of a statement (the stored envelope's payload is the bare document).
 */
export async function attestationsForPush(store: BlobStore, stored: ImageAttestations, subject: { name: string; digest: Digest }, key: SigningKey | undefined): Promise<AttestationLayer[]> {
  const statementEnvelope = (statement: object) => Buffer.from(JSON.stringify(dsseEnvelope(IN_TOTO_PAYLOAD_TYPE, Buffer.from(canonicalJson(statement), 'utf8'), key)), 'utf8');
  const subjects = [{ name: subject.name, digest: { sha256: hexOf(subject.digest) } }];

  const provenanceBytes = await readEnvelope(store, stored.provenance);
  const provenance = payloadOf(provenanceBytes, stored.provenance) as { subject?: Array<{ digest?: { sha256?: string } }>; predicate?: unknown };
  const namesPushed = provenance.subject?.length === 1 && provenance.subject[0]?.digest?.sha256 === hexOf(subject.digest);
  const layers: AttestationLayer[] = [
    {
      envelope: namesPushed ? provenanceBytes : statementEnvelope({ _type: IN_TOTO_STATEMENT_TYPE, subject: subjects, predicateType: SLSA_PROVENANCE_PREDICATE_TYPE, predicate: provenance.predicate }),
      predicateType: SLSA_PROVENANCE_PREDICATE_TYPE,
    },
  ];
  for (const [kind, predicateType] of [
    ['sbomSpdx', SPDX_PREDICATE_TYPE],
    ['sbomCycloneDx', CYCLONEDX_PREDICATE_TYPE],
  ] as const) {
    const document = payloadOf(await readEnvelope(store, stored[kind]), stored[kind]);
    layers.push({ envelope: statementEnvelope({ _type: IN_TOTO_STATEMENT_TYPE, subject: subjects, predicateType, predicate: document }), predicateType });
  }
  return layers;
}

async function readEnvelope(store: BlobStore, digest: Digest): Promise<Buffer> {
  const info = await store.stat(digest);
  if (!info) throw new Error(`attestation ${digest} is no longer stored`);
  if (info.size > MAX_ENVELOPE_BYTES) throw new Error(`attestation ${digest} is ${info.size} bytes, over ${MAX_ENVELOPE_BYTES}`);
  return buffer(await store.open(digest));
}

/** The JSON document a stored envelope carries. */
function payloadOf(envelopeBytes: Buffer, digest: Digest): unknown {
  try {
    const envelope = JSON.parse(envelopeBytes.toString('utf8')) as DsseEnvelope;
    return JSON.parse(Buffer.from(envelope.payload, 'base64').toString('utf8'));
  } catch (err) {
    throw new Error(`attestation ${digest} is not a DSSE envelope of JSON: ${(err as Error).message}`, { cause: err });
  }
}
