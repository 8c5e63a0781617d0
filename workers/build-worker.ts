/**
 * A build worker process: takes build jobs from the queue and runs them. Start any number, on
 * any host that reaches Redis and the store.
 */
import { Worker } from 'bullmq';
import { BlobOwners } from '../src/auth/blob-owners.ts';
import { BuildLogs } from '../src/builds/build-log.ts';
import { createBuildProcessor } from '../src/builds/build-processor.ts';
import { CancelListener } from '../src/builds/cancellation.ts';
import { scheduleGarbageCollection } from '../src/builds/garbage-collection.ts';
import { createPushProcessor } from '../src/builds/push-processor.ts';
import { PUSH_QUEUE, type PushJobData } from '../src/queue/push-queue.ts';
import { loadRegistries } from '../src/registry/registries.ts';
import { BuildRepository } from '../src/builds/build-repository.ts';
import { BuildEventStream } from '../src/events/event-stream.ts';
import { RedisResultCache } from '../src/builds/result-cache.ts';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/log.ts';
import { BUILD_QUEUE, type BuildJobData } from '../src/queue/build-queue.ts';
import { connectRedis } from '../src/redis.ts';
import { FsBlobStore } from '../src/store/fs-blob-store.ts';
import { QemuVmRunner } from '../src/vm/qemu-vm-runner.ts';

const config = loadConfig();
const logger = createLogger('baler-worker', config.logLevel);
if (!config.redisUrl) {
  logger.fatal('REDIS_URL is not set');
  process.exit(2);
}

const redis = connectRedis(config.redisUrl, { forWorker: true });
const store = await FsBlobStore.create(config.dataDir);
// Temp dirs of VM steps whose worker died; then the kernel and initramfs, before any job.
const swept = await QemuVmRunner.sweepStaleTempDirs();
if (swept.length > 0) logger.info({ swept }, 'removed temp dirs of VM steps of dead workers');
// BALER_VM_POOL warm VMs start booting now; stop() kills them (and the exit hook, however we end).
const vm = new QemuVmRunner({ logger, poolSize: config.vmPoolSize });
await vm.assets();
const events = new BuildEventStream(redis, config.retentionSeconds);
const builds = new BuildRepository(redis, events);
const registries = loadRegistries(config.registriesFile);
const owners = new BlobOwners(redis);
const cancellations = await CancelListener.start(connectRedis(config.redisUrl, { forWorker: true }));
const worker = new Worker<BuildJobData>(
  BUILD_QUEUE,
  createBuildProcessor({
    store,
    builds,
    logs: new BuildLogs(redis, config.maxLogBytes, events),
    vm,
    logger,
    allowDevices: config.allowDevices,
    cancellations,
    buildTimeoutSeconds: config.buildTimeoutSeconds,
    tenantMaxRunning: config.tenantMaxRunning,
    registries,
    cache: new RedisResultCache(redis, config.retentionSeconds),
    events,
  }),
  {
    connection: redis,
    concurrency: config.workerConcurrency,
    autorun: true,
    lockDuration: config.jobLockMs,
    stalledInterval: config.stalledCheckMs,
    // A build whose worker died is run again; one that kills two workers is failed.
    maxStalledCount: 2,
  },
);
worker.on('error', (err) => logger.error({ err }, 'worker error'));
const pusher = new Worker<PushJobData>(PUSH_QUEUE, createPushProcessor({ store, builds, registries, logger }), {
  connection: redis,
  concurrency: 1,
  lockDuration: config.jobLockMs,
  stalledInterval: config.stalledCheckMs,
});
pusher.on('error', (err) => logger.error({ err }, 'push worker error'));
const stopCollecting =
  config.gcIntervalSeconds > 0
    ? scheduleGarbageCollection(
        redis,
        builds,
        store,
        { retentionMs: config.retentionSeconds * 1000, graceMs: config.gcGraceSeconds * 1000, onDeleted: (digest, size) => owners.forget(digest, size) },
        config.gcIntervalSeconds * 1000,
        logger,
      )
    : () => {};
logger.info({ concurrency: config.workerConcurrency, dataDir: config.dataDir }, 'worker started');

let stopping = false;
const stop = async (signal: string) => {
  if (stopping) return;
  stopping = true;
  logger.info({ signal }, 'worker stopping');
  stopCollecting();
  // The warm VMs waiting for jobs: killed, their files removed (running steps go on).
  await vm.close();
  // Let running builds finish for a while; past the grace period stop waiting: their locks
  // lapse and another worker takes them up again (BullMQ stalled jobs).
  const graceful = Promise.all([worker.close(), pusher.close()]);
  const expired = new Promise<'expired'>((resolve) => setTimeout(() => resolve('expired'), config.shutdownGraceMs).unref());
  if ((await Promise.race([graceful, expired])) === 'expired') {
    // Exiting is the hand-back: the VMs die with this process, the job locks lapse.
    logger.warn({ graceMs: config.shutdownGraceMs }, 'builds still running at the end of the grace period; handing them back');
    process.exit(0);
  }
  await cancellations.close();
  redis.disconnect();
  process.exit(0);
};
process.on('SIGTERM', () => void stop('SIGTERM'));
// Started by `npm start`: go when the parent goes (its channel closes), however it ended.
process.on('disconnect', () => void stop('parent exited'));
process.on('SIGINT', () => void stop('SIGINT'));
