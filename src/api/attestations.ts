import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { buffer } from 'node:stream/consumers';
import { ATTESTATION_PAYLOAD_TYPES, type Attested, type ImageAttestations } from '../attest/image-attestations.ts';
import type { BuildRepository } from '../builds/build-repository.ts';
import type { Digest } from '../digest.ts';
import { Problem } from '../problem.ts';
import type { BlobStore } from '../store/blob-store.ts';
import { requireTenantBuild } from '../submission/tenant-build.ts';
import { downloadTarget } from './image-platform.ts';
import { operationSchema } from './openapi.ts';

export interface AttestationsOptions {
  store: BlobStore;
  builds: BuildRepository;
}

/** What a stored envelope may be: the worker wrote it, but a reply is never an unbounded read. */
const MAX_ENVELOPE_BYTES = 256 * 1024 ** 2;
const DSSE_MEDIA_TYPE = 'application/vnd.dsse.envelope.v1+json';

type AttestationRequest = FastifyRequest<{ Params: { id: string }; Querystring: { format?: 'spdx' | 'cyclonedx'; platform?: string; envelope?: '0' | '1' } }>;

/**
 * `/v1/builds/{id}/sbom` and `/provenance`: an image's attestations (attest/), as the worker
 * stored them: the DSSE payload byte for byte (what the signature covers), or the envelope.
 */
export const attestationsRoutes: FastifyPluginAsync<AttestationsOptions> = async (app, { store, builds }) => {
  const send = async (request: AttestationRequest, reply: FastifyReply, kind: keyof ImageAttestations) => {
    const record = await requireTenantBuild(builds, request.tenant, request.params.id);
    if (record.status !== 'succeeded' || !record.result) {
      throw new Problem(409, `build ${record.id} is ${record.status}; its attestations are available once it has succeeded`);
    }
    // One image: `?platform=`, else this host's (as a download of one image picks it).
    const target = downloadTarget({ ...record, result: record.result }, 'attestations', request.query.platform);
    if (!('image' in target)) throw new Error('a download of one image gave an index');
    const image = target.image as Attested;
    if (!image.attestations) {
      const why = image.attestationError ?? 'it was made before baler attested its builds';
      throw new Problem(404, `build ${record.id} has no attestations: ${why}`);
    }
    const envelope = await readEnvelope(store, image.attestations[kind]);
    if (request.query.envelope === '1') return reply.type(DSSE_MEDIA_TYPE).send(envelope);
    const { payloadType, payload } = JSON.parse(envelope.toString('utf8')) as { payloadType: string; payload: string };
    if (payloadType !== ATTESTATION_PAYLOAD_TYPES[kind]) throw new Error(`attestation ${image.attestations[kind]} has payload type ${payloadType}`);
    return reply.type(payloadType).send(Buffer.from(payload, 'base64'));
  };

  app.get('/v1/builds/:id/sbom', { schema: operationSchema('getBuildSbom') }, (request: AttestationRequest, reply) =>
    send(request, reply, request.query.format === 'cyclonedx' ? 'sbomCycloneDx' : 'sbomSpdx'),
  );
  app.get('/v1/builds/:id/provenance', { schema: operationSchema('getBuildProvenance') }, (request: AttestationRequest, reply) => send(request, reply, 'provenance'));
};

async function readEnvelope(store: BlobStore, digest: Digest): Promise<Buffer> {
  const info = await store.stat(digest);
  // The result names it, so garbage collection keeps it: gone means the store lost it.
  if (!info) throw new Problem(404, `attestation ${digest} is no longer stored`);
  if (info.size > MAX_ENVELOPE_BYTES) throw new Error(`attestation ${digest} is ${info.size} bytes, over ${MAX_ENVELOPE_BYTES}`);
  return buffer(await store.open(digest));
}
