import type { Redis } from 'ioredis';
import type { BuildRecord } from '../builds/build-record.ts';
import type { BuildRepository } from '../builds/build-repository.ts';
import type { BuildSpec } from '../builds/spec.ts';
import { Problem } from '../problem.ts';
import type { BuildSubmission } from './build-submission.ts';
import type { SubmissionResponse } from './idempotency.ts';
import type { Submitter } from './submitter.ts';

export interface VerificationSubmissionDeps {
  redis: Redis;
  builds: BuildRepository;
  submission: BuildSubmission;
}

/** While one verify request of a build submits its rebuild, another of the same build waits its turn (a 409 to retry). */
const SUBMITTING_TTL_SECONDS = 30;
const submittingKey = (id: string) => `baler:verify-submitting:${id}`;

/**
 * `POST /v1/builds/{id}/verify`: a verification build of a succeeded build, submitted like any
 * build (so it counts against the tenant's queue quota, and waits its turn): the original's
 * resolved spec, with no cache, `verifies` naming the original. While one is queued or running,
 * asking again answers that one. The comparison is made by the worker once it has finished
 * (worker/verification-processor.ts).
 */
export async function submitVerification(
  original: BuildRecord,
  submitter: Submitter,
  deps: VerificationSubmissionDeps,
  idempotencyKey?: string,
): Promise<{ response: SubmissionResponse; replayed: boolean }> {
  if (original.status !== 'succeeded' || !original.result) {
    throw new Problem(409, `build ${original.id} is ${original.status}; only a succeeded build can be verified`);
  }
  if (original.spec.platforms) throw new Problem(422, `build ${original.id} is a multi-platform build; only single-platform builds can be verified (for now)`);
  const key = submittingKey(original.id);
  if ((await deps.redis.set(key, '1', 'EX', SUBMITTING_TTL_SECONDS, 'NX')) !== 'OK') {
    throw new Problem(409, `a verification of build ${original.id} is being submitted; retry in a moment`, { headers: { 'Retry-After': '1' } });
  }
  try {
    // Read again under the claim: a request that held it until just now may have submitted one.
    const verificationBuild = (await deps.builds.get(original.id))?.verificationBuild;
    const running = verificationBuild ? await deps.builds.get(verificationBuild) : null;
    if (running && (running.status === 'queued' || running.status === 'running')) {
      submitter.log.info({ verification: running.id }, 'a verification of this build is already under way; answering it');
      return { response: accepted(running.id, running.status, original.id), replayed: false };
    }
    // The resolved spec is a spec whose defaults are all set: it builds the same image again.
    const submitted = await deps.submission.submit(original.spec as BuildSpec, submitter, { noCache: true, verifies: original.id, idempotencyKey });
    const { id, status } = submitted.response.body as { id: string; status: BuildRecord['status'] };
    if (!submitted.replayed) await deps.builds.update(original.id, { verificationBuild: id });
    return { response: accepted(id, status, original.id, submitted.response.body as object), replayed: submitted.replayed };
  } finally {
    await deps.redis.del(key);
  }
}

function accepted(id: string, status: BuildRecord['status'], verifies: string, body: object = {}): SubmissionResponse {
  return { status: 202, location: `/v1/builds/${id}`, body: { ...body, id, status, verifies } };
}
