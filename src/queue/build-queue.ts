import { Queue, type ConnectionOptions } from 'bullmq';
import { Redis } from 'ioredis';
import { tenantOf } from '../builds/tenant.ts';
import type { ResolvedSpec } from '../builds/spec.ts';
import { BASE_TIER_MIB, MEMORY_TIERS_MIB, requirementOf } from './capabilities.ts';

export const BUILD_QUEUE = 'baler-builds';
/** Pub/sub channel on which every enqueue names its queue (CapabilityConsumer wakes on it). */
export const BUILD_QUEUED_CHANNEL = 'baler:build-queued';

/** What a build job carries: the id and the spec, nothing large (blobs stay in the store). */
export interface BuildJobData {
  buildId: string;
  spec: ResolvedSpec;
  /** Whose build it is (its VM layers are cached for it alone); absent in jobs queued before tenants were carried: see tenantOfJob. */
  tenant?: string;
  /** The build-cache key its result is recorded under; absent when it cannot be cached. */
  cacheKey?: string;
  /** `?noCache=true`: look nothing up in the caches. */
  noCache?: boolean;
  /** When the build went back to the queue after a failed attempt (ms), for the time it waited. */
  requeuedAt?: number;
}

/** The tenant a job builds for; a job queued before jobs carried one counts as the default tenant's. */
export function tenantOfJob(data: BuildJobData): string {
  return tenantOf(data);
}

/**
 * The queue of one capability class (a VM memory tier, see capabilities.ts). The base tier
 * keeps the historic name, so builds queued before classes existed are still taken.
 */
export function buildQueueName(vmMemoryMiB: number): string {
  return vmMemoryMiB === BASE_TIER_MIB ? BUILD_QUEUE : `${BUILD_QUEUE}-mem${vmMemoryMiB}`;
}

/** The build queues, one per capability class, created as builds need them. */
export class BuildQueues {
  private readonly queues = new Map<number, Queue<BuildJobData>>();

  constructor(private readonly connection: ConnectionOptions) {}

  /** The queue a build with this spec waits in. */
  queueFor(spec: ResolvedSpec): Queue<BuildJobData> {
    return this.queueOf(requirementOf(spec).vmMemoryMiB);
  }

  private queueOf(tier: number): Queue<BuildJobData> {
    let queue = this.queues.get(tier);
    if (!queue) {
      queue = new Queue<BuildJobData>(buildQueueName(tier), { connection: this.connection });
      this.queues.set(tier, queue);
    }
    return queue;
  }

  /** Tell idle workers a build is waiting in `queueName`, so they take it at once (best effort: they look anyway). */
  async announce(queueName: string): Promise<void> {
    if (this.connection instanceof Redis) await this.connection.publish(BUILD_QUEUED_CHANNEL, queueName).catch(() => 0);
  }

  /** Take a build no worker has taken yet out of its queue (an active one its worker stops). */
  async remove(buildId: string, spec: ResolvedSpec): Promise<void> {
    await this.queueFor(spec).remove(buildId).catch(() => 0);
  }

  /** Jobs by state, summed over every capability class's queue (the fleet's queue depth). */
  async getJobCounts(): Promise<Record<string, number>> {
    const sum: Record<string, number> = {};
    for (const tier of MEMORY_TIERS_MIB) {
      for (const [state, n] of Object.entries(await this.queueOf(tier).getJobCounts())) sum[state] = (sum[state] ?? 0) + n;
    }
    return sum;
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.close()));
  }
}

/** The build queues (every capability class's) on this connection. */
export function createBuildQueue(connection: ConnectionOptions): BuildQueues {
  return new BuildQueues(connection);
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
 * Queue a build in the queue of its capability class. Its place is its spec's priority plus
 * how many builds its tenant already has waiting: a tenant with 500 queued builds does not
 * starve another's single one (a fair share without per-tenant queues).
 */
export async function enqueueBuild(queues: BuildQueues, data: BuildJobData, attempts: number, tenantQueued = 0): Promise<void> {
  const queue = queues.queueFor(data.spec);
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
  await queues.announce(queue.name);
}
