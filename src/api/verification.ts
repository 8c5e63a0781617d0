import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import type { BuildRepository } from '../builds/build-repository.ts';
import { Problem } from '../problem.ts';
import type { BlobStore } from '../store/blob-store.ts';
import type { BuildSubmission } from '../submission/build-submission.ts';
import { requireTenantBuild } from '../submission/tenant-build.ts';
import { submitVerification } from '../submission/verification-submission.ts';
import { operationSchema } from './openapi.ts';
import { idempotencyKeyOf, sendSubmissionResponse } from './submission-reply.ts';

export interface VerificationOptions {
  redis: Redis;
  store: BlobStore;
  builds: BuildRepository;
  submission: BuildSubmission;
}

const DSSE_MEDIA_TYPE = 'application/vnd.dsse.envelope.v1+json';
/** A verification statement lists a few digests per layer: far below this. */
const MAX_STATEMENT_BYTES = 16 * 1024 ** 2;

type BuildRequest = FastifyRequest<{ Params: { id: string } }>;

/**
 * `POST /v1/builds/{id}/verify`: rebuild a succeeded build with no cache and compare (the
 * verification build, submitted through verification-submission.ts); its outcome shows on the
 * build as `verification` and `reproducible`. `GET /v1/builds/{id}/verification`: the signed
 * statement of the last verification, as its DSSE envelope.
 */
export const verificationRoutes: FastifyPluginAsync<VerificationOptions> = async (app, opts) => {
  const { builds, store } = opts;

  app.post('/v1/builds/:id/verify', { schema: operationSchema('verifyBuild') }, async (request: BuildRequest, reply) => {
    const original = await requireTenantBuild(builds, request.tenant, request.params.id);
    return sendSubmissionResponse(reply, await submitVerification(original, request, opts, idempotencyKeyOf(request)));
  });

  app.get('/v1/builds/:id/verification', { schema: operationSchema('getBuildVerification') }, async (request: BuildRequest, reply) => {
    const record = await requireTenantBuild(builds, request.tenant, request.params.id);
    const verification = record.verification;
    if (!verification) throw new Problem(404, `build ${record.id} has not been verified (POST /v1/builds/${record.id}/verify)`);
    if (!verification.statement) throw new Problem(404, `the last verification of build ${record.id} has no statement: ${verification.error ?? 'none was stored'}`);
    const info = await store.stat(verification.statement);
    // Its record names it, so garbage collection keeps it: gone means the store lost it.
    if (!info) throw new Problem(404, `verification statement ${verification.statement} is no longer stored`);
    if (info.size > MAX_STATEMENT_BYTES) throw new Error(`verification statement ${verification.statement} is ${info.size} bytes, over ${MAX_STATEMENT_BYTES}`);
    return reply.type(DSSE_MEDIA_TYPE).send(await store.open(verification.statement));
  });
};
