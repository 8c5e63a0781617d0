import type { Job } from 'bullmq';
import { recordVerification } from '../attest/verification/record-verification.ts';
import type { SigningKey } from '../attest/signing/signing-key.ts';
import { FINAL_STATUSES } from '../builds/build-record.ts';
import { tenantOfJob, type BuildJobData } from '../queue/build-queue.ts';
import { ChargedStore } from '../store/charged-store.ts';
import type { ProcessorDeps } from './build-processor.ts';

type JobProcessor = (job: Job<BuildJobData>, token?: string) => Promise<void>;

export interface VerificationProcessorDeps extends Pick<ProcessorDeps, 'store' | 'quota' | 'builds' | 'logger' | 'layerBudgets'> {
  /** Signs verification statements (BALER_SIGNING_KEY_FILE); absent: unsigned. */
  signingKey?: SigningKey;
}

/**
 * The build processor, and after a verification build (`verifies` in its job) has reached a
 * final state, its verification recorded on the original (record-verification.ts). A job that
 * goes back to the queue (a retry, a busy tenant, a full disk) records nothing yet. A
 * verification that cannot be recorded is logged; the verification build's own state stands.
 */
export function withVerification(process: JobProcessor, deps: VerificationProcessorDeps): JobProcessor {
  return async (job, token) => {
    if (!job.data.verifies) return process(job, token);
    try {
      await process(job, token);
    } finally {
      await recordIfFinished(job, deps);
    }
  };
}

async function recordIfFinished(job: Job<BuildJobData>, deps: VerificationProcessorDeps): Promise<void> {
  const { buildId } = job.data;
  const log = deps.logger.child({ buildId });
  try {
    const rebuild = await deps.builds.get(buildId);
    if (!rebuild || !FINAL_STATUSES.has(rebuild.status)) return;
    const store = new ChargedStore(deps.store, deps.quota, tenantOfJob(job.data));
    await recordVerification(rebuild, { store, builds: deps.builds, signingKey: deps.signingKey, layerBudgets: deps.layerBudgets, logger: log });
  } catch (err) {
    log.error({ err, verifies: job.data.verifies }, 'could not record the verification');
  }
}
