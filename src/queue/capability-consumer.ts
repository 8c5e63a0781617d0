/**
 * Takes build jobs from the queues of the build classes this host serves, at most
 * `concurrency` at a time across all of them.
 *
 * One BullMQ Worker per class queue would run up to `concurrency` builds per class; instead
 * this uses BullMQ's manual job processing (a Worker without a processor: `getNextJob`, lock
 * renewal, `moveToCompleted`/`moveToFailed`), so a job is only taken when a slot is free. What
 * BullMQ does for an automatic worker stays BullMQ's: priorities within a queue, attempts and
 * backoff (`moveToFailed`), stalled-job recovery (each Worker's stalled checker), delays.
 */
import { Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '../log.ts';
import { BUILD_QUEUED_CHANNEL, buildQueueName, type BuildJobData } from './build-queue.ts';
import type { BuildClass } from './capabilities.ts';

export type BuildJobProcessor = (job: Job<BuildJobData>, token: string) => Promise<void>;

export interface ConsumerOptions {
  connection: Redis;
  /** The build classes served, in the order they are looked at (capabilities.ts: largest VM first). */
  classes: readonly BuildClass[];
  concurrency: number;
  lockDurationMs: number;
  stalledIntervalMs: number;
  maxStalledCount: number;
  /**
   * A connection of its own (subscriber mode) on which enqueues are announced, so an idle
   * consumer takes a new build at once; without it, or for jobs that come back by themselves
   * (retries, delays, stalled jobs), it looks every `pollMs`.
   */
  announcements?: Redis;
  /** How often an idle consumer looks for new jobs. */
  pollMs?: number;
  logger: Logger;
}

const DEFAULT_POLL_MS = 500;

export class CapabilityConsumer {
  private readonly workers: Worker<BuildJobData>[];
  private readonly running = new Set<Promise<void>>();
  private closing = false;
  private wake: (() => void) | undefined;
  /** A wake-up that came while the loop was not waiting: its next wait returns at once. */
  private woken = false;
  private loop: Promise<void> | undefined;
  private tokens = 0;

  constructor(
    private readonly processor: BuildJobProcessor,
    private readonly opts: ConsumerOptions,
  ) {
    this.workers = opts.classes.map((cls) => {
      const worker = new Worker<BuildJobData>(buildQueueName(cls), null, {
        connection: opts.connection,
        autorun: false,
        lockDuration: opts.lockDurationMs,
        stalledInterval: opts.stalledIntervalMs,
        maxStalledCount: opts.maxStalledCount,
      });
      worker.on('error', (err) => opts.logger.error({ err, queue: worker.name }, 'build queue error'));
      return worker;
    });
  }

  /** Builds running here now. */
  get active(): number {
    return this.running.size;
  }

  /** The queue names consumed, in the order they are looked at. */
  get queueNames(): string[] {
    return this.workers.map((w) => w.name);
  }

  async start(): Promise<void> {
    // Every host recovers the stalled jobs of the classes it serves (a dead host's builds).
    await Promise.all(this.workers.map((w) => w.startStalledCheckTimer()));
    const { announcements } = this.opts;
    if (announcements) {
      const served = new Set(this.queueNames);
      announcements.on('message', (_channel: string, queueName: string) => {
        if (served.has(queueName)) this.wakeUp();
      });
      await announcements.subscribe(BUILD_QUEUED_CHANNEL);
    }
    this.loop = this.fetchLoop();
  }

  private async fetchLoop(): Promise<void> {
    while (!this.closing) {
      if (this.running.size >= this.opts.concurrency) {
        await this.idle(undefined);
        continue;
      }
      let taken = false;
      try {
        for (const worker of this.workers) {
          const token = `${worker.id}:${this.tokens++}`;
          const job = await worker.getNextJob(token, { block: false });
          if (job) {
            this.run(job, token);
            taken = true;
            break;
          }
        }
      } catch (err) {
        this.opts.logger.warn({ err }, 'could not take a build from the queue; trying again');
      }
      if (!taken) await this.idle(this.opts.pollMs ?? DEFAULT_POLL_MS);
    }
  }

  private wakeUp(): void {
    if (this.wake) this.wake();
    else this.woken = true;
  }

  /** Wait until a build finishes or one is announced or, with `ms`, that long. */
  private idle(ms: number | undefined): Promise<void> {
    if (this.woken) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const timer = ms === undefined ? undefined : setTimeout(() => done(), ms);
      const done = () => {
        if (timer) clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
      this.wake = done;
    });
  }

  private run(job: Job<BuildJobData>, token: string): void {
    const { lockDurationMs, logger } = this.opts;
    const log = logger.child({ buildId: job.data.buildId, jobId: job.id, queue: job.queueName });
    // Renew the lock while the build runs; a host that cannot reach Redis loses it, and the
    // stalled checker of another host puts the job back for someone else.
    const renew = setInterval(() => {
      job.extendLock(token, lockDurationMs).then(
        (ok) => {
          if (!ok) log.warn('lost the lock of a running build; another worker may take it up');
        },
        (err: unknown) => log.warn({ err }, 'could not renew the lock of a running build'),
      );
    }, lockDurationMs / 2);
    const finished = (async () => {
      try {
        await this.processor(job, token);
        await job.moveToCompleted(undefined, token, false);
      } catch (err) {
        // The processor moved the job to delayed itself (its tenant is busy): nothing to do.
        if ((err as Error).name === 'DelayedError') return;
        // Retries, backoff and unrecoverable errors: BullMQ decides from the job's options.
        await job.moveToFailed(err as Error, token, false);
      }
    })()
      .catch((err: unknown) => log.warn({ err }, 'could not record the end of a build job (its lock lapsed?)'))
      .finally(() => {
        clearInterval(renew);
        this.running.delete(finished);
        this.wakeUp();
      });
    this.running.add(finished);
  }

  /** Whether every build taken here has ended. */
  whenIdle(): Promise<void> {
    return Promise.all(this.running).then(() => {});
  }

  /** Stop taking builds, let the running ones finish, close the queues. */
  async close(): Promise<void> {
    this.closing = true;
    this.wakeUp();
    this.opts.announcements?.disconnect();
    await this.loop;
    await this.whenIdle();
    await Promise.all(this.workers.map((w) => w.close()));
  }
}
