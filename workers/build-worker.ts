/**
 * A build worker process: takes build jobs from the queue and runs them. Start any number, on
 * any host that reaches Redis and the store.
 */
import { Worker } from 'bullmq';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { loadSigningKey } from '../src/attest/signing/signing-key.ts';
import { BlobOwners } from '../src/auth/blob-owners.ts';
import { quotaSettings, TenantQuota } from '../src/auth/tenant-quota.ts';
import { BuildLogs } from '../src/builds/build-log.ts';
import { createBuildProcessor, MAX_WORKER_DEATHS } from '../src/worker/build-processor.ts';
import { withVerification } from '../src/worker/verification-processor.ts';
import { BuildSandbox } from '../src/sandbox/build-sandbox.ts';
import { CancelListener } from '../src/builds/cancellation.ts';
import { scheduleGarbageCollection } from '../src/builds/garbage-collection.ts';
import { createPushProcessor } from '../src/worker/push-processor.ts';
import { PUSH_QUEUE, type PushJobData } from '../src/queue/push-queue.ts';
import { loadRegistries } from '../src/registry/registries.ts';
import { BuildRepository } from '../src/builds/build-repository.ts';
import { BuildEventStream } from '../src/events/event-stream.ts';
import { RedisResultCache } from '../src/builds/result-cache.ts';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/log.ts';
import { CapabilityConsumer } from '../src/queue/capability-consumer.ts';
import { classesServedBy, type ServedPlatform, type WorkerCapabilities } from '../src/queue/capabilities.ts';
import { WorkerRegistration } from '../src/queue/worker-registry.ts';
import { connectRedis } from '../src/redis.ts';
import { openBlobStore } from '../src/store/open-blob-store.ts';
import { startPlatformRunners } from '../src/vm/platform-runners.ts';
import { QemuVmRunner } from '../src/vm/qemu-vm-runner.ts';
import { choosePlatforms } from '../src/vm/served-platforms.ts';
import { serveMetrics } from '../src/metrics/metrics-server.ts';
import { WriteCountingStore } from '../src/metrics/store-writes.ts';
import { countVmBoots, createWorkerMetrics, zeroVmBoots } from '../src/metrics/worker-metrics.ts';

const config = loadConfig();
const logger = createLogger('baler-worker', config.logLevel);
if (!config.redisUrl) {
  logger.fatal('REDIS_URL is not set');
  process.exit(2);
}

const metrics = createWorkerMetrics();
// Each worker serves its own metrics; Prometheus scrapes every worker host (BALER_WORKER_METRICS_PORT).
const metricsServer =
  config.workerMetricsPort > 0
    ? await serveMetrics(metrics.registry, { host: config.workerMetricsHost, port: config.workerMetricsPort }, logger).catch((err: unknown) => {
        logger.fatal({ err, host: config.workerMetricsHost, port: config.workerMetricsPort }, 'cannot serve metrics');
        process.exit(2);
      })
    : undefined;
const redis = connectRedis(config.redisUrl, { forWorker: true });
const store = new WriteCountingStore(await openBlobStore(config, { redis }), metrics.storeWrittenBytes);
// Temp dirs of VM steps whose worker died; then the kernel and initramfs, before any job.
const swept = await QemuVmRunner.sweepStaleTempDirs();
if (swept.length > 0) logger.info({ swept }, 'removed temp dirs of VM steps of dead workers');
// A VM runner per platform served (BALER_VM_PLATFORMS; default: the host's own and every one
// whose QEMU is installed), with its kernel and initramfs. BALER_VM_POOL warm VMs per platform
// start booting now (an emulated platform's at its first build); stop() kills them (and the
// exit hook, however we end).
const choice = (() => {
  try {
    return choosePlatforms(config.vmPlatforms);
  } catch (err) {
    logger.fatal({ err }, (err as Error).message);
    process.exit(2);
  }
})();
const vm = await startPlatformRunners(choice, {
  logger,
  poolSize: config.vmPoolSize,
  diskReserveMiB: config.vmDiskReserveMiB,
  boots: countVmBoots(metrics),
});
zeroVmBoots(
  metrics,
  vm.platforms.map((p) => p.name),
);
const events = new BuildEventStream(redis, config.retentionSeconds);
const builds = new BuildRepository(redis, events);
const registries = loadRegistries(config.registriesFile);
const owners = new BlobOwners(redis);
const quota = new TenantQuota(redis, quotaSettings(config));
const cancellations = await CancelListener.start(connectRedis(config.redisUrl, { forWorker: true }));
// Only the build-class queues this host can serve (capabilities.ts): it never takes a build
// for a platform it does not run or that needs a bigger VM than it runs.
const platforms = await vm.served();
const [first] = platforms as [ServedPlatform, ...ServedPlatform[]];
const capabilities: WorkerCapabilities = { accel: first.accel, platform: first.platform, platforms, maxVmMemoryMiB: config.workerMaxVmMemoryMiB };
// Every build runs in a thread of its own with a heap limit (src/sandbox/): what its input does
// there cannot take this process down or hold its event loop.
const sandbox = new BuildSandbox({
  store: config,
  redisUrl: config.redisUrl,
  quota: quotaSettings(config),
  heapMiB: config.buildHeapMiB,
  onStored: (bytes) => metrics.storeWrittenBytes.inc(bytes),
});
// Attestations are signed with the operator's key, when there is one; a key that cannot be read stops the worker.
const signingKey = config.signingKeyFile
  ? await loadSigningKey(config.signingKeyFile).catch((err: unknown) => {
      logger.fatal({ err, file: config.signingKeyFile }, 'cannot load the signing key (BALER_SIGNING_KEY_FILE)');
      process.exit(2);
    })
  : undefined;
const { version: balerVersion } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
const workerId = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
// A verification build's comparison is made here, after it finished, in this thread: the
// signing key never enters a build's sandbox thread or its VM.
const processBuild = withVerification(
  createBuildProcessor({
    store,
    quota,
    builds,
    logs: new BuildLogs(redis, config.maxLogBytes, events),
    vm,
    logger,
    workerId,
    allowDevices: config.allowDevices,
    cancellations,
    buildTimeoutSeconds: config.buildTimeoutSeconds,
    tenantMaxRunning: config.tenantMaxRunning,
    registries,
    cache: new RedisResultCache(redis, config.retentionSeconds),
    events,
    metrics,
    sandbox,
    archiveBudgets: config.archiveBudgets,
    layerBudgets: config.layerBudgets,
    maxErrorChars: config.archiveBudgets.maxErrorChars,
    attest: { signingKey, builderId: config.builderId, balerVersion, worker: workerId, packageBudgets: config.sbomBudgets, vmAssets: await vm.assetDigests() },
  }),
  { store, quota, builds, logger, layerBudgets: config.layerBudgets, signingKey },
);
const worker = new CapabilityConsumer(processBuild, {
  connection: redis,
  classes: classesServedBy(capabilities),
  concurrency: config.workerConcurrency,
  lockDurationMs: config.jobLockMs,
  stalledIntervalMs: config.stalledCheckMs,
  // A build whose worker died is run again; the processor fails one that stopped two
  // (BullMQ itself would fail it only after a third, without touching its record).
  maxStalledCount: MAX_WORKER_DEATHS,
  announcements: connectRedis(config.redisUrl, { forWorker: true }),
  logger,
});
await worker.start();
const startedAt = new Date().toISOString();
const registration = new WorkerRegistration(
  redis,
  () => ({ id: workerId, host: hostname(), ...capabilities, concurrency: config.workerConcurrency, running: worker.active, queues: worker.queueNames, startedAt }),
  Math.max(1000, Math.floor(config.jobLockMs / 2)),
);
await registration.start();
const pusher = new Worker<PushJobData>(PUSH_QUEUE, createPushProcessor({ store, quota, builds, registries, logger, signingKey }), {
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
logger.info(
  {
    id: workerId,
    ...capabilities,
    queues: worker.queueNames,
    concurrency: config.workerConcurrency,
    dataDir: config.dataDir,
    attestations: signingKey ? `signed by key ${signingKey.keyId}` : 'unsigned',
  },
  'worker started',
);

let stopping = false;
const stop = async (signal: string) => {
  if (stopping) return;
  stopping = true;
  logger.info({ signal }, 'worker stopping');
  stopCollecting();
  await registration.stop().catch(() => {});
  // The warm VMs waiting for jobs: killed, their files removed (running steps go on).
  await vm.close();
  await sandbox.close();
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
  metricsServer?.close();
  redis.disconnect();
  process.exit(0);
};
process.on('SIGTERM', () => void stop('SIGTERM'));
// Started by `npm start`: go when the parent goes (its channel closes), however it ended.
process.on('disconnect', () => void stop('parent exited'));
process.on('SIGINT', () => void stop('SIGINT'));
