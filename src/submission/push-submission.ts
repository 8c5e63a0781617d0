import type { Queue } from 'bullmq';
import type { BuildRepository } from '../builds/build-repository.ts';
import { Problem } from '../problem.ts';
import { enqueuePush, type PushJobData } from '../queue/push-queue.ts';
import { parsePushReference, RegistryError, type Registries } from '../registry/registries.ts';
import type { SubmissionResponse } from './idempotency.ts';
import { requireTenantBuild } from './tenant-build.ts';
import type { Submitter } from './submitter.ts';

export interface PushSubmissionDeps {
  builds: BuildRepository;
  queue: Queue<PushJobData>;
  registries: Registries;
}

/**
 * A push of a succeeded build's image to `ref`, a tag at a registry the operator allows:
 * recorded on the build (`pushes`) and queued; a worker does it.
 */
export class PushSubmission {
  constructor(private readonly deps: PushSubmissionDeps) {}

  async submit(buildId: string, ref: string, submitter: Submitter): Promise<SubmissionResponse> {
    const { builds, queue, registries } = this.deps;
    const build = await requireTenantBuild(builds, submitter.tenant, buildId);
    if (build.status !== 'succeeded') throw new Problem(409, `build ${buildId} is ${build.status}; only a succeeded build can be pushed`);
    try {
      parsePushReference(ref, registries);
    } catch (err) {
      if (err instanceof RegistryError) throw new Problem(422, err.message, { cause: err });
      throw err;
    }
    const pushes = { ...(build.pushes ?? {}), [ref]: { status: 'queued' as const, requestedAt: new Date().toISOString() } };
    await builds.update(buildId, { pushes });
    await enqueuePush(queue, { buildId, ref });
    submitter.log.info({ buildId, ref }, 'push queued');
    return { status: 202, location: `/v1/builds/${buildId}`, body: { ref, status: 'queued' } };
  }
}
