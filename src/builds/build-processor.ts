import { UnrecoverableError, type Job } from 'bullmq';
import type { BaseImage } from '../image/image.ts';
import { LayerInputError } from '../image/layer-entry.ts';
import { loadStoredImage } from '../image/sources/earlier-build.ts';
import type { Logger } from '../log.ts';
import type { ProblemBody } from '../problem.ts';
import { BlobNotFoundError, type BlobStore } from '../store/blob-store.ts';
import type { BuildJobData } from '../queue/build-queue.ts';
import { FINAL_STATUSES } from './build-record.ts';
import { VmInputError } from '../vm/errors.ts';
import type { VmRunner } from '../vm/vm-runner.ts';
import type { BuildLogs } from './build-log.ts';
import type { BuildRepository } from './build-repository.ts';
import { runBuild, VmStepError } from './run-build.ts';

export interface ProcessorDeps {
  store: BlobStore;
  builds: BuildRepository;
  logs: BuildLogs;
  vm: VmRunner;
  logger: Logger;
  allowDevices: boolean;
}

/** Failures caused by the build's own input or scripts: retrying cannot help. */
function isInputError(err: unknown): boolean {
  return (
    err instanceof LayerInputError ||
    err instanceof BlobNotFoundError ||
    err instanceof VmStepError ||
    err instanceof VmInputError ||
    err instanceof BaseImageError
  );
}

export class BaseImageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BaseImageError';
  }
}

function failure(err: unknown): ProblemBody {
  if (isInputError(err)) return { type: 'about:blank', title: 'Build failed', status: 422, detail: (err as Error).message };
  return { type: 'about:blank', title: 'Build failed', status: 500, detail: `internal error: ${(err as Error).message}` };
}

/**
 * Runs one build job and keeps its record current. A job that a dead worker left behind is
 * run again from the start by BullMQ's stalled-job recovery; that is safe because every
 * output lands in the content-addressed store and the record only changes at the end.
 */
export function createBuildProcessor(deps: ProcessorDeps) {
  return async (job: Job<BuildJobData>): Promise<void> => {
    const { buildId, spec } = job.data;
    const log = deps.logger.child({ buildId, jobId: job.id, attempt: job.attemptsMade + 1 });
    const record = await deps.builds.get(buildId);
    if (!record) {
      log.warn('build record is gone; dropping the job');
      return;
    }
    if (FINAL_STATUSES.has(record.status)) {
      log.info({ status: record.status }, 'build already finished; nothing to do');
      return;
    }

    const started = Date.now();
    await deps.builds.update(buildId, { status: 'running', startedAt: new Date(started).toISOString() });
    await deps.logs.clear(buildId);
    log.info({ status: 'running' }, 'build started');
    // Log lines are appended in order; the processor waits for the last before finishing.
    let logWrites = Promise.resolve();
    try {
      const result = await runBuild(spec, {
        store: deps.store,
        vm: deps.vm,
        allowDevices: deps.allowDevices,
        loadBuildImage: (id) => loadBuildImage(deps, id),
        onStep: (step, detail) => log.info({ step, ...detail }, 'build step'),
        onLog: (text) => {
          logWrites = logWrites.then(() => deps.logs.append(buildId, text)).catch((err: unknown) => log.warn({ err }, 'could not keep log output'));
        },
      });
      await logWrites;
      await deps.builds.update(buildId, { status: 'succeeded', result, finishedAt: new Date().toISOString() });
      log.info({ status: 'succeeded', durationMs: Date.now() - started, archive: result.archive }, 'build succeeded');
    } catch (err) {
      await logWrites;
      const lastAttempt = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      if (isInputError(err) || lastAttempt) {
        await deps.builds.update(buildId, { status: 'failed', error: failure(err), finishedAt: new Date().toISOString() });
        log.warn({ status: 'failed', err, durationMs: Date.now() - started }, 'build failed');
      } else {
        await deps.builds.update(buildId, { status: 'queued' });
        log.error({ err }, 'build attempt failed; it will be retried');
      }
      if (isInputError(err)) throw new UnrecoverableError((err as Error).message);
      throw err;
    }
  };
}

async function loadBuildImage(deps: ProcessorDeps, id: string): Promise<BaseImage> {
  const base = await deps.builds.get(id);
  if (!base?.result || base.status !== 'succeeded') throw new BaseImageError(`base build ${id} has not succeeded`);
  return loadStoredImage(deps.store, base.result.imageId, base.result.layers);
}
