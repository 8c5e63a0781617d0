import { Readable } from 'node:stream';
import type { BuildRecord } from '../../builds/build-record.ts';
import type { BuildRepository } from '../../builds/build-repository.ts';
import type { BuildResult } from '../../builds/build-result.ts';
import type { Digest } from '../../digest.ts';
import { BuildUsage, type LayerBudgets } from '../../image/build-usage.ts';
import { firstTarDifference } from '../../image/tar-difference.ts';
import type { Logger } from '../../log.ts';
import type { BlobStore } from '../../store/blob-store.ts';
import { IN_TOTO_PAYLOAD_TYPE } from '../provenance/statement.ts';
import { dsseEnvelope } from '../signing/dsse.ts';
import type { SigningKey } from '../signing/signing-key.ts';
import { type BuildVerification, compareResults, type FirstDifference } from './verification.ts';
import { verificationPayload, verificationStatement } from './verification-statement.ts';

export interface VerificationDeps {
  /** Where the layers are read and the statement stored (the tenant's charged store). */
  store: BlobStore;
  builds: BuildRepository;
  /** Signs the statement (BALER_SIGNING_KEY_FILE); absent: it is stored unsigned. */
  signingKey?: SigningKey;
  /** Reading the first differing layer is bounded as a build's reading of a layer is. */
  layerBudgets?: LayerBudgets;
  logger: Logger;
  signal?: AbortSignal;
}

/**
 * Once a verification build (`verifies` set) has finished: its result compared with the
 * original's (each layer's diff_id, the config, the archive), the first differing path of the
 * first layer that differs found by reading both layers side by side, the verdict signed as an
 * in-toto statement stored as a blob, and all of it recorded on the ORIGINAL build
 * (`verification`, `reproducible`). A rebuild that failed or was cancelled records why, and no
 * verdict. Runs in the worker's own thread (the signing key never enters a build's sandbox).
 */
export async function recordVerification(rebuild: BuildRecord, deps: VerificationDeps): Promise<BuildVerification | null> {
  const log = deps.logger.child({ verifies: rebuild.verifies });
  const original = rebuild.verifies ? await deps.builds.get(rebuild.verifies) : null;
  // Forgotten meanwhile (retention): nothing to record on.
  if (!original?.result || !rebuild.verifies) {
    log.info('the build this one verifies is gone; nothing recorded');
    return null;
  }
  const verifiedAt = new Date().toISOString();
  if (rebuild.status !== 'succeeded' || !rebuild.result) {
    const error = rebuild.status === 'failed' ? `the verification build failed: ${rebuild.error?.detail ?? 'no reason recorded'}` : `the verification build was ${rebuild.status}`;
    const verification: BuildVerification = { buildId: rebuild.id, error, verifiedAt };
    await deps.builds.replace(original.id, { verification }, ['reproducible']);
    log.warn({ error }, 'verification has no verdict');
    return verification;
  }
  const comparison = compareResults(original.result, rebuild.result);
  const firstDifference = comparison.firstMismatchingLayer === undefined ? undefined : await differenceIn(comparison.firstMismatchingLayer, original.result, rebuild.result, deps, log);
  // A build answered from the build cache was built by the worker of the build it names.
  const builtBy = original.worker ?? (original.cachedFrom ? (await deps.builds.get(original.cachedFrom))?.worker : undefined);
  const workers = workersOf(builtBy, rebuild.worker);
  const { firstMismatchingLayer: _, ...verdict } = comparison;
  const verification: BuildVerification = { buildId: rebuild.id, ...verdict, ...(firstDifference ? { firstDifference } : {}), workers, verifiedAt };
  const statement = verificationStatement({
    subject: { name: `${original.spec.name}:${original.spec.tag}`, digest: original.result.imageId },
    original: { buildId: original.id, archive: original.result.archive.digest },
    rebuilt: { buildId: rebuild.id, imageId: rebuild.result.imageId, archive: rebuild.result.archive.digest },
    verification,
  });
  const envelope = dsseEnvelope(IN_TOTO_PAYLOAD_TYPE, verificationPayload(statement), deps.signingKey);
  const stored = await deps.store.put(Readable.from([Buffer.from(JSON.stringify(envelope), 'utf8')]));
  verification.statement = stored.digest;
  await deps.builds.update(original.id, { verification, reproducible: verification.reproducible });
  log.info({ reproducible: verification.reproducible, firstDifference, workers, statement: stored.digest, signed: Boolean(deps.signingKey) }, 'verification recorded');
  return verification;
}

/** Where the first mismatching layer first differs: a missing layer, or its first differing path. */
async function differenceIn(index: number, original: BuildResult, rebuilt: BuildResult, deps: VerificationDeps, log: Logger): Promise<FirstDifference | undefined> {
  const a: Digest | undefined = original.diffIds[index];
  const b: Digest | undefined = rebuilt.diffIds[index];
  if (!a) return { layer: index, what: 'added' };
  if (!b) return { layer: index, what: 'missing' };
  try {
    const difference = await firstTarDifference(deps.store, a, b, new BuildUsage(deps.layerBudgets).tarLimits, deps.signal);
    return difference ? { layer: index, ...difference } : undefined;
  } catch (err) {
    // Over a budget, or a layer gone: the verdict stands without the path.
    log.warn({ err, layer: index }, 'could not find the first differing path');
    return undefined;
  }
}

function workersOf(original: string | undefined, rebuilt: string | undefined): BuildVerification['workers'] {
  const workers: NonNullable<BuildVerification['workers']> = {};
  if (original) workers.original = original;
  if (rebuilt) workers.rebuilt = rebuilt;
  if (original && rebuilt) workers.different = original !== rebuilt;
  return workers;
}
