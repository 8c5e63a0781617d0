import { Queue, type ConnectionOptions } from 'bullmq';
import type { ResolvedSpec } from '../builds/spec.ts';

export const BUILD_QUEUE = 'baler-builds';

/** What a build job carries: the id and the spec, nothing large (blobs stay in the store). */
export interface BuildJobData {
  buildId: string;
  spec: ResolvedSpec;
  /** The build-cache key its result is recorded under; absent when it cannot be cached. */
  cacheKey?: string;
  /** `?noCache=true`: look nothing up in the caches. */
  noCache?: boolean;
  /** When the build went back to the queue after a failed attempt (ms), for the time it waited. */
  requeuedAt?: number;
}

export function createBuildQueue(connection: ConnectionOptions): Queue<BuildJobData> {
  return new Queue<BuildJobData>(BUILD_QUEUE, { connection });
}

/**
 * A build's job id is its build id: enqueueing it twice is a no-op, and logs, metrics and
 * queue tools name a build the same way.
 */
export function jobIdOf(buildId: string): string {
  return buildId;
}

/** BullMQ's largest priority. */
const MAX_PRIORITY = 2 ** 21;

/**
 * Queue a build. Its place is its spec's priority plus how many builds its tenant already
 * has waiting: a tenant with 500 queued builds does not starve another's single one (a fair
 * share without per-tenant queues).
 */
export async function enqueueBuild(queue: Queue<BuildJobData>, data: BuildJobData, attempts: number, tenantQueued = 0): Promise<void> {
  await queue.add('build', data, {
    jobId: jobIdOf(data.buildId),
    // Every build has a priority, so none jumps ahead by having none (BullMQ takes
    // unprioritised jobs first).
    priority: Math.min(MAX_PRIORITY, data.spec.priority + tenantQueued),
    attempts,
    backoff: { type: 'exponential', delay: 1000 },
    removeOnComplete: { age: 24 * 3600 },
    removeOnFail: { age: 7 * 24 * 3600 },
  });
}
