/**
 * Live workers, as they announce themselves in Redis: each worker writes its entry with a TTL
 * and renews it (a heartbeat); a worker that died or lost Redis drops out when its TTL ends.
 * For operators (`GET /v1/workers`) and for the API to say why a build waits.
 */
import type { Redis } from 'ioredis';
import type { ResolvedSpec } from '../builds/spec.ts';
import { canServe, classOf, platformsOf, type WorkerCapabilities } from './capabilities.ts';
import { platformsInSet } from './platform-sets.ts';

const INDEX = 'baler:workers';
const entryKey = (id: string) => `baler:workers:${id}`;

export interface WorkerEntry extends WorkerCapabilities {
  id: string;
  host: string;
  concurrency: number;
  /** Builds it runs right now (as of its last heartbeat). */
  running: number;
  /** The build-class queues it takes builds from. */
  queues: string[];
  startedAt: string;
  /** Its last heartbeat. */
  seenAt: string;
}

/** The workers whose heartbeat has not lapsed. */
export async function liveWorkers(redis: Redis): Promise<WorkerEntry[]> {
  const now = Date.now();
  // Index members whose entry expired are dropped here (their keys are gone already).
  await redis.zremrangebyscore(INDEX, '-inf', now);
  const ids = await redis.zrange(INDEX, 0, -1);
  if (ids.length === 0) return [];
  const entries = await redis.mget(ids.map(entryKey));
  return entries.filter((e): e is string => e !== null).map((e) => JSON.parse(e) as WorkerEntry);
}

const recent = new WeakMap<Redis, { at: number; workers: Promise<WorkerEntry[]> }>();
/** The live workers as of at most a second ago: a burst of submissions asks Redis once. */
function recentWorkers(redis: Redis): Promise<WorkerEntry[]> {
  const cached = recent.get(redis);
  if (cached && Date.now() - cached.at < 1000) return cached.workers;
  const workers = liveWorkers(redis);
  recent.set(redis, { at: Date.now(), workers });
  workers.catch(() => recent.delete(redis));
  return workers;
}

/**
 * Why a build will wait for a worker, when no live worker can run it (none at all, none for its
 * platform, or none with a big enough VM); null when one can.
 */
export async function whyNoWorkerServes(redis: Redis, spec: ResolvedSpec): Promise<string | null> {
  const required = classOf(spec);
  const workers = await recentWorkers(redis);
  if (workers.some((w) => canServe(w, required))) return null;
  if (workers.length === 0) return 'no worker is running; the build waits in the queue until one starts';
  const needed = platformsInSet(required.platform);
  const forPlatform = workers.filter((w) => needed.every((p) => platformsOf(w).includes(p)));
  if (forPlatform.length === 0) {
    const running = [...new Set(workers.flatMap(platformsOf))].join(', ');
    return `no live worker runs ${needed.join(' and ')} VMs (the workers run ${running}); the build waits in the queue until such a worker starts`;
  }
  const largest = Math.max(...forPlatform.map((w) => w.maxVmMemoryMiB));
  return `no live worker runs VMs of ${required.vmMemoryMiB} MiB (the tier of memorySize ${spec.memorySize}; the largest allowed now is ${largest} MiB); the build waits in the queue until such a worker starts`;
}

/** This worker's entry, renewed every `heartbeatMs` and gone `3 × heartbeatMs` after the last renewal. */
export class WorkerRegistration {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly entry: () => Omit<WorkerEntry, 'seenAt'>,
    private readonly heartbeatMs: number,
  ) {}

  async start(): Promise<void> {
    await this.beat();
    this.timer = setInterval(() => void this.beat().catch(() => {}), this.heartbeatMs);
    this.timer.unref();
  }

  private async beat(): Promise<void> {
    const entry: WorkerEntry = { ...this.entry(), seenAt: new Date().toISOString() };
    const ttlMs = 3 * this.heartbeatMs;
    await this.redis
      .multi()
      .set(entryKey(entry.id), JSON.stringify(entry), 'PX', ttlMs)
      .zadd(INDEX, Date.now() + ttlMs, entry.id)
      .exec();
  }

  /** Leave at once (a clean stop), rather than when the TTL ends. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    const { id } = this.entry();
    await this.redis.multi().del(entryKey(id)).zrem(INDEX, id).exec();
  }
}
