import { DelayedError, UnrecoverableError, type Job } from 'bullmq';
import type { TenantQuota } from '../auth/tenant-quota.ts';
import { BudgetExceededError } from '../budget.ts';
import type { Image, StoredImage } from '../image/image.ts';
import { BuildUsage, type LayerBudgets } from '../image/build-usage.ts';
import { DEFAULT_ARCHIVE_BUDGETS, type ArchiveBudgets } from '../image/sources/archive/budgets.ts';
import { printable } from '../image/printable.ts';
import type { BuildSandbox } from '../sandbox/build-sandbox.ts';
import { LayerInputError } from '../image/layer-entry.ts';
import { ArchiveImportError } from '../image/sources/archive/import-archive.ts';
import { loadImage } from '../image/stored-image.ts';
import type { Logger } from '../log.ts';
import type { ProblemBody } from '../problem.ts';
import { BlobNotFoundError, QuotaExceededError, StoreFullError, type BlobStore } from '../store/blob-store.ts';
import { ChargedStore } from '../store/charged-store.ts';
import { tenantOfJob, type BuildJobData } from '../queue/build-queue.ts';
import { VmHostBusyError, VmInputError } from '../vm/errors.ts';
import { RegistryError, type Registries } from '../registry/registries.ts';
import type { VmRunner } from '../vm/vm-runner.ts';
import { BaseImageError } from '../builds/base-image-error.ts';
import type { BuildLogs } from '../builds/build-log.ts';
import { BuildLogWriter } from '../builds/build-log-writer.ts';
import type { CancelListener } from '../builds/cancellation.ts';
import type { BuildRepository } from '../builds/build-repository.ts';
import type { BuildDeps } from '../builds/build-deps.ts';
import { runPlatforms } from '../builds/multi-platform-build.ts';
import { runBuild } from '../builds/run-build.ts';
import { blobsOfResult, imageOfPlatform } from '../builds/build-result.ts';
import { platformOfArchitecture, platformsOf } from '../builds/platforms.ts';
import { VmStepError } from '../builds/vm-step.ts';
import type { CachedBuild } from '../builds/build-cache.ts';
import { BuildReporter } from '../events/build-reporter.ts';
import type { BuildEventStream } from '../events/event-stream.ts';
import type { RevocableResultCache } from '../builds/result-cache.ts';
import type { BuildOutcome, WorkerMetrics } from '../metrics/worker-metrics.ts';
import { attestResult, type AttestDeps } from '../attest/attest-build.ts';
import { describeAttestedArchives } from '../attest/attested-archives.ts';
import { WorkerObserver } from './worker-observer.ts';

export interface ProcessorDeps {
  store: BlobStore;
  /** What a build stores, or takes from a cache, is charged to its tenant. */
  quota: TenantQuota;
  builds: BuildRepository;
  logs: BuildLogs;
  vm: VmRunner;
  logger: Logger;
  /** This worker's registry id, recorded on each build it takes (`worker`). */
  workerId?: string;
  allowDevices: boolean;
  /** Where cancellations of running builds arrive; without it builds only stop when queued. */
  cancellations?: CancelListener;
  /** Wall-clock limit of one attempt; over it the build fails `timed out after N s`. */
  buildTimeoutSeconds?: number;
  /** Builds of one tenant running at once (0: no limit). */
  tenantMaxRunning?: number;
  registries?: Registries;
  /** Layers, imports and whole builds made before; absent: no caching. */
  cache?: RevocableResultCache;
  /** Where the builds' step and progress events go (state and log events come with builds and logs). */
  events?: BuildEventStream;
  metrics?: WorkerMetrics;
  /**
   * Where builds run: a thread per build with a heap limit (what the worker always uses), or,
   * without one, in this thread (tests of the processor itself).
   */
  sandbox?: BuildSandbox;
  /** What importing a base archive may cost; absent: the defaults. */
  archiveBudgets?: ArchiveBudgets;
  /** What a build's tars and layers may hold; absent: the defaults. */
  layerBudgets?: LayerBudgets;
  /** Longest error text a failed build's record shows (BALER_MAX_ERROR_CHARS). */
  maxErrorChars?: number;
  /** How a succeeded build's images are attested (SBOMs, provenance); absent: they are not. */
  attest?: Omit<AttestDeps, 'store' | 'signal'>;
}

const BUSY_TENANT_DELAY_MS = 1000;
/**
 * A build whose worker process died while running it this many times is not run again: one
 * build can stop at most this many worker processes (BullMQ counts the deaths: `stalledCounter`).
 */
export const MAX_WORKER_DEATHS = 2;
/** A build whose VM step the worker had no disk room for is tried again after this. */
const HOST_BUSY_DELAY_MS = 5000;
const DEFAULT_MAX_ERROR_CHARS = DEFAULT_ARCHIVE_BUDGETS.maxErrorChars;
/** A running build says so this often, with its step: a build that seems stuck shows where. */
const STILL_RUNNING_LOG_MS = 30_000;

/** Failures caused by the build's own input or scripts: retrying cannot help. */
function isInputError(err: unknown): boolean {
  return (
    err instanceof LayerInputError ||
    err instanceof BudgetExceededError ||
    err instanceof QuotaExceededError ||
    err instanceof BlobNotFoundError ||
    err instanceof VmStepError ||
    err instanceof VmInputError ||
    err instanceof ArchiveImportError ||
    // A registry that is down or misbehaves may come back: only those are worth a retry.
    (err instanceof RegistryError && err.kind !== 'unreachable' && err.kind !== 'protocol') ||
    err instanceof BaseImageError
  );
}

/**
 * The problem a failed build's record shows. Its text is shown as input text is (controls
 * escaped) and cut to `maxChars`: whatever an error quotes of a hostile input, a build's record
 * stays small.
 */
function failure(err: unknown, maxChars: number): ProblemBody {
  const problem = (status: number, detail: string): ProblemBody => ({ type: 'about:blank', title: 'Build failed', status, detail: printable(detail, maxChars) });
  const message = (err as Error).message;
  if (err instanceof StoreFullError) return problem(507, message);
  if (err instanceof QuotaExceededError) return problem(413, message);
  if (isInputError(err)) return problem(422, message);
  // A registry that stayed down or broken through every attempt: its fault, not ours.
  if (err instanceof RegistryError) return problem(502, message);
  return problem(500, `internal error: ${message}`);
}

/**
 * Runs one build job and keeps its record current. A job that a dead worker left behind is
 * run again from the start by BullMQ's stalled-job recovery; that is safe because every
 * output lands in the content-addressed store and the record only changes at the end.
 */
export function createBuildProcessor(deps: ProcessorDeps) {
  return async (job: Job<BuildJobData>, token?: string): Promise<void> => {
    const { buildId, spec } = job.data;
    const log = deps.logger.child({ buildId, jobId: job.id, attempt: job.attemptsMade + 1 });
    const started = Date.now();
    // Listening for a cancel before the claim: one sent between the claim and a later
    // registration would be lost, and the build would run to its end for nothing.
    const cancel = deps.cancellations?.register(buildId);
    if (job.stalledCounter >= MAX_WORKER_DEATHS) {
      deps.cancellations?.unregister(buildId);
      await failPoisonBuild(deps, buildId, job.stalledCounter, log);
      throw new UnrecoverableError('the build stopped its worker twice');
    }
    if (job.stalledCounter > 0) log.warn({ workerDeaths: job.stalledCounter }, 'this build was running when its worker process died; running it once more');
    // From queued, or from running when a dead worker's job is picked up again; a build that
    // was cancelled (or finished) meanwhile is left alone.
    const claimed = await deps.builds.transition(
      buildId,
      ['queued', 'running'],
      { status: 'running', startedAt: new Date(started).toISOString(), attempt: job.attemptsMade + 1 },
      deps.tenantMaxRunning ?? 0,
    );
    if (claimed !== true) deps.cancellations?.unregister(buildId);
    if (claimed === 'busy') {
      // Its tenant has its share running: back to the queue for a moment, still queued.
      await job.moveToDelayed(Date.now() + BUSY_TENANT_DELAY_MS, token);
      throw new DelayedError();
    }
    if (!claimed) {
      const record = await deps.builds.get(buildId);
      log.info({ status: record?.status ?? 'gone' }, 'build is not runnable; dropping the job');
      return;
    }
    if (deps.workerId) await deps.builds.update(buildId, { worker: deps.workerId });
    await deps.logs.clear(buildId);
    // Queued since it was submitted, or since its last attempt failed.
    log.info({ status: 'running', queuedMs: started - (job.data.requeuedAt ?? job.timestamp) }, 'build started');
    /** How long this attempt has been running; ends its metrics with `outcome`. */
    const ended = (outcome: BuildOutcome): number => {
      const runningMs = Date.now() - started;
      deps.metrics?.buildDuration.observe({ outcome }, runningMs / 1000);
      return runningMs;
    };

    // Log lines are appended in order; the processor waits for the last before finishing.
    const logWriter = new BuildLogWriter(deps.logs, buildId, (err) => log.warn({ err }, 'could not keep log output'));
    // So do step and progress events: a build's final state is its last event.
    const events = deps.events && new BuildReporter(deps.events, buildId, log);
    // A single-platform build's steps all name its platform; a multi-platform build's, each its own (runPlatforms).
    const platform = spec.platforms ? undefined : platformOfArchitecture(spec.architecture);
    const observer = new WorkerObserver({ logger: log, log: logWriter, events, metrics: deps.metrics, platform });
    const written = () => Promise.all([logWriter.flush(), events?.flush()]);
    const stillRunning = setInterval(() => {
      const now = Date.now();
      const { name, platform, at } = observer.current;
      log.info({ step: name, platform, stepMs: now - at, runningMs: now - started }, 'build still running');
    }, STILL_RUNNING_LOG_MS);
    const deadline = deps.buildTimeoutSeconds ? AbortSignal.timeout(deps.buildTimeoutSeconds * 1000) : undefined;
    const signals = [cancel?.signal, deadline].filter((s): s is AbortSignal => s !== undefined);
    try {
      const tenant = tenantOfJob(job.data);
      // What the build stores is charged to its tenant: through this store when it runs in this
      // thread, through the sandbox's own (SandboxOptions.quota) when it runs in one.
      const store = new ChargedStore(deps.store, deps.quota, tenant);
      const sandbox = deps.sandbox;
      const run: typeof runBuild = sandbox ? (s, d) => sandbox.run(s, d, { buildId, buildImage: (id, architecture) => buildImageRef(deps, id, architecture) }) : runBuild;
      const buildDeps: BuildDeps = {
        store,
        vm: deps.vm,
        tenant,
        allowDevices: deps.allowDevices,
        registries: deps.registries,
        loadBuildImage: (id, architecture) => loadBuildImage(deps, id, architecture),
        observer,
        logger: log,
        signal: signals.length > 0 ? AbortSignal.any(signals) : undefined,
        cache: deps.cache,
        noCache: job.data.noCache,
        archiveBudgets: deps.archiveBudgets,
        layerBudgets: deps.layerBudgets,
      };
      const built = spec.platforms ? await runPlatforms(spec, buildDeps, run, (platforms) => deps.builds.update(buildId, { platforms })) : await run(spec, buildDeps);
      observer.current = { name: 'attesting', at: Date.now() };
      const attestStarted = Date.now();
      // In this thread, not the sandbox's: the package databases it reads are bounded by the
      // SBOM library's budgets, and the signing key stays out of the thread that parses the
      // build's input. A failure is recorded on the image (attestationError), never the build's.
      // A multi-platform build's oci-archive holds its images' SBOMs, so it is described again
      // with them (a second read of it); that fails only as the archive step could (the store).
      const result = deps.attest
        ? await describeAttestedArchives(
            await attestResult(
              built,
              { buildId, spec, startedOn: new Date(started).toISOString(), finishedOn: new Date().toISOString() },
              { tarLimits: new BuildUsage(deps.layerBudgets).tarLimits, ...deps.attest, store, signal: buildDeps.signal },
            ),
            spec,
            store,
          )
        : built;
      const attestMs = Date.now() - attestStarted;
      for (const image of [result, ...(result.platforms ?? [])]) if (image.attestationError) log.warn({ attestationError: image.attestationError }, 'image has no attestations');
      observer.current = { name: 'finishing', at: Date.now() };
      // Its blobs taken from caches (and a base's) count for this tenant too, once each.
      await store.chargeStored(blobsOfResult(result));
      await written();
      // In the build cache before it is seen as succeeded: a client that resubmits the spec the
      // moment it sees `succeeded` gets the hit. Only a build that succeeded stays named as the
      // source of later hits: the entry goes again when it was cancelled meanwhile.
      const { cacheKey } = job.data;
      let cached = false;
      if (deps.cache && cacheKey) {
        cached = await deps.cache.set('build', cacheKey, { buildId, result } satisfies CachedBuild).then(
          () => true,
          (err: unknown) => {
            log.warn({ err }, 'could not record the build in the build cache');
            return false;
          },
        );
      }
      if (await deps.builds.transition(buildId, ['running'], { status: 'succeeded', result, finishedAt: new Date().toISOString() })) {
        log.info({ status: 'succeeded', runningMs: ended('succeeded'), attestMs, archive: result.archive }, 'build succeeded');
      } else {
        if (cached && deps.cache && cacheKey) await deps.cache.delete('build', cacheKey).catch((err: unknown) => log.warn({ err }, 'could not remove the build from the build cache'));
        log.info({ runningMs: ended('cancelled') }, 'build finished but was cancelled meanwhile; result dropped');
      }
    } catch (err) {
      await written();
      if (cancel?.signal.aborted) {
        // The API already marked it cancelled (and logged that); make sure, in case the mark raced the start.
        const runningMs = ended('cancelled');
        if (await deps.builds.transition(buildId, ['queued', 'running'], { status: 'cancelled', finishedAt: new Date().toISOString() })) {
          log.info({ status: 'cancelled', runningMs }, 'build cancelled');
        } else {
          log.info({ runningMs }, 'build stopped: it was cancelled');
        }
        throw new UnrecoverableError('cancelled');
      }
      if (deadline?.aborted) {
        const error: ProblemBody = { type: 'about:blank', title: 'Build failed', status: 422, detail: `timed out after ${deps.buildTimeoutSeconds} s (the build time limit)` };
        await deps.builds.transition(buildId, ['running'], { status: 'failed', error, finishedAt: new Date().toISOString() });
        log.warn({ status: 'failed', runningMs: ended('failed') }, 'build timed out');
        throw new UnrecoverableError(error.detail ?? 'timed out');
      }
      if (err instanceof VmHostBusyError) {
        // Not a failure, and no attempt spent: back to the queue for a while, saying why.
        await deps.builds.transition(buildId, ['running'], { status: 'queued', waiting: err.reason });
        await deps.logs.append(buildId, `baler: ${err.reason}\n`);
        log.info({ status: 'queued', waiting: err.reason, runningMs: Date.now() - started }, 'build waits for room on this worker');
        await job.moveToDelayed(Date.now() + HOST_BUSY_DELAY_MS, token);
        throw new DelayedError();
      }
      const lastAttempt = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      // A full store fails the build at once (retrying would not free space); new builds
      // work again as soon as there is room.
      if (isInputError(err) || err instanceof StoreFullError || lastAttempt) {
        await deps.builds.transition(buildId, ['running'], { status: 'failed', error: failure(err, deps.maxErrorChars ?? DEFAULT_MAX_ERROR_CHARS), finishedAt: new Date().toISOString() });
        log.warn({ status: 'failed', err, runningMs: ended('failed') }, 'build failed');
      } else {
        const runningMs = ended('retried');
        await deps.builds.transition(buildId, ['running'], { status: 'queued' });
        await job.updateData({ ...job.data, requeuedAt: Date.now() }).catch((e: unknown) => log.warn({ err: e }, 'could not note when the build was queued again'));
        log.error({ status: 'queued', err, runningMs }, 'build attempt failed; it will be retried');
      }
      if (isInputError(err) || err instanceof StoreFullError) throw new UnrecoverableError((err as Error).message);
      throw err;
    } finally {
      clearInterval(stillRunning);
      deps.cancellations?.unregister(buildId);
    }
  };
}

async function buildImageRef(deps: ProcessorDeps, id: string, architecture?: string): Promise<StoredImage> {
  const base = await deps.builds.get(id);
  if (!base?.result || base.status !== 'succeeded') throw new BaseImageError(`base build ${id} has not succeeded`);
  const image = architecture ? imageOfPlatform(base.result, platformOfArchitecture(architecture)) : base.result;
  if (!image) throw new BaseImageError(`base build ${id} has no image for ${platformOfArchitecture(architecture as string)}; it has ${platformsOf(base.spec).join(', ')}`);
  return { imageId: image.imageId, layers: image.layers };
}

async function loadBuildImage(deps: ProcessorDeps, id: string, architecture?: string): Promise<Image> {
  return loadImage(deps.store, await buildImageRef(deps, id, architecture));
}

/**
 * A build that stopped its worker process twice (out of memory in the kernel's eyes, a crash)
 * is failed rather than handed to a third worker; the log says which build it was.
 */
async function failPoisonBuild(deps: ProcessorDeps, buildId: string, deaths: number, log: Logger): Promise<void> {
  const error: ProblemBody = {
    type: 'about:blank',
    title: 'Build failed',
    status: 422,
    detail: `the build stopped its worker twice (its worker process died while running it ${deaths} times); it is not run again`,
  };
  const failed = await deps.builds.transition(buildId, ['queued', 'running'], { status: 'failed', error, finishedAt: new Date().toISOString() });
  log.error({ status: failed ? 'failed' : 'gone', workerDeaths: deaths }, 'build failed: it stopped its worker twice');
}
