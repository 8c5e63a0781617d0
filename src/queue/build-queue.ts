import { Queue, type ConnectionOptions } from 'bullmq';
import { Redis } from 'ioredis';
import { tenantOf } from '../builds/tenant.ts';
import type { ResolvedSpec } from '../builds/spec.ts';
import { DEFAULT_VM_PLATFORM } from '../vm/platforms/index.ts';
import { allBuildClasses, BASE_TIER_MIB, classOf, type BuildClass } from './capabilities.ts';
import { platformsInSet } from './platform-sets.ts';

const BUILD_QUEUE = 'baler-builds';
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
  /** A verification build's original (`POST /v1/builds/{id}/verify`): compared with it once finished. */
  verifies?: string;
  /** When the build went back to the queue after a failed attempt (ms), for the time it waited. */
  requeuedAt?: number;
}

/** The tenant a job builds for; a job queued before jobs carried one counts as the default tenant's. */
export function tenantOfJob(data: BuildJobData): string {
  return tenantOf(data);
}

/**
 * The queue of one build class (capabilities.ts), named by what it requires: the platform
 * (left out for linux/amd64, which every queue was before platforms) and the VM memory tier
 * (left out for the base tier, the historic name: builds queued before classes existed are
 * still taken). baler-builds, baler-builds-mem2048, baler-builds-arm64-mem512,
 * baler-builds-amd64+arm64-mem512 (a multi-platform build's VM steps on both).
 */
export function buildQueueName(cls: BuildClass): string {
  const arch = (p: string) => p.replace(/^linux\//, '').replaceAll('/', '-');
  const platform = cls.platform === DEFAULT_VM_PLATFORM.name ? '' : `-${platformsInSet(cls.platform).map(arch).join('+')}`;
  if (platform === '' && cls.vmMemoryMiB === BASE_TIER_MIB) return BUILD_QUEUE;
  return `${BUILD_QUEUE}${platform}-mem${cls.vmMemoryMiB}`;
}

/** The build queues, one per build class, created as builds need them. */
export class BuildQueues {
  /** By queue name. */
  private readonly queues = new Map<string, Queue<BuildJobData>>();

  constructor(private readonly connection: ConnectionOptions) {}

  /** The queue a build with this spec waits in. */
  queueFor(spec: ResolvedSpec): Queue<BuildJobData> {
    return this.queueOf(classOf(spec));
  }

  private queueOf(cls: BuildClass): Queue<BuildJobData> {
    const name = buildQueueName(cls);
    let queue = this.queues.get(name);
    if (!queue) {
      queue = new Queue<BuildJobData>(name, { connection: this.connection });
      this.queues.set(name, queue);
    }
    return queue;
  }

  /** Tell idle workers a build is waiting in `queueName`, so they take it at once (best effort: they look anyway). */
  async announce(queueName: string): Promise<void> {
    if (this.connection instanceof Redis) await this.connection.publish(BUILD_QUEUED_CHANNEL, queueName).catch(() => 0);
  }

  /** Take a build no worker has taken yet out of its queue (an active one its worker stops). */
  async remove(buildId: string, spec: ResolvedSpec): Promise<void> {
    await this.queueFor(spec)
      .remove(buildId)
      .catch(() => 0);
  }

  /** Jobs by state, summed over every build class's queue (the fleet's queue depth). */
  async getJobCounts(): Promise<Record<string, number>> {
    const sum: Record<string, number> = {};
    for (const cls of allBuildClasses()) {
      for (const [state, n] of Object.entries(await this.queueOf(cls).getJobCounts())) sum[state] = (sum[state] ?? 0) + n;
    }
    return sum;
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.close()));
  }
}

/** The build queues (every build class's) on this connection. */
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
 * Queue a build in the queue of its build class. Its place is its spec's priority plus
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
