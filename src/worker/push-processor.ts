import { UnrecoverableError, type Job } from 'bullmq';
import { pushSignaturesAndAttestations } from '../attest/push-signatures.ts';
import type { SigningKey } from '../attest/signing/signing-key.ts';
import type { TenantQuota } from '../auth/tenant-quota.ts';
import { loadImage } from '../image/stored-image.ts';
import type { Logger } from '../log.ts';
import type { PushJobData } from '../queue/push-queue.ts';
import { pushImage, pushIndex } from '../registry/push.ts';
import { RegistryError, type Registries } from '../registry/registries.ts';
import { QuotaExceededError, type BlobStore } from '../store/blob-store.ts';
import { ChargedStore } from '../store/charged-store.ts';
import type { BuildRepository } from '../builds/build-repository.ts';
import type { PushRecord } from '../builds/build-record.ts';
import { tenantOf } from '../builds/tenant.ts';

export interface PushProcessorDeps {
  store: BlobStore;
  /** What a push stores (layers compressed for the registry) is charged to the build's tenant. */
  quota: TenantQuota;
  builds: BuildRepository;
  registries: Registries;
  logger: Logger;
  /** BALER_SIGNING_KEY_FILE, loaded: pushes carry cosign signatures and signed attestations; absent: unsigned attestations only. */
  signingKey?: SigningKey;
}

/** Pushes a finished build's image to a registry and keeps the push's state on the build. */
export function createPushProcessor(deps: PushProcessorDeps) {
  const record = async (buildId: string, ref: string, patch: Partial<PushRecord>) => {
    const build = await deps.builds.get(buildId);
    const pushes = { ...(build?.pushes ?? {}) };
    pushes[ref] = { ...(pushes[ref] ?? { status: 'queued', requestedAt: new Date().toISOString() }), ...patch };
    await deps.builds.update(buildId, { pushes });
  };

  return async (job: Job<PushJobData>): Promise<void> => {
    const { buildId, ref } = job.data;
    const log = deps.logger.child({ buildId, jobId: job.id, ref });
    const build = await deps.builds.get(buildId);
    if (!build?.result) {
      log.warn('build gone or without an image; dropping the push');
      return;
    }
    await record(buildId, ref, { status: 'running' });
    log.info('push started');
    try {
      const store = new ChargedStore(deps.store, deps.quota, tenantOf(build));
      const { platforms } = build.result;
      // A multi-platform build goes up as its index, every platform's image under one tag.
      const pushed = platforms
        ? await pushIndex(store, await Promise.all(platforms.map((p) => loadImage(deps.store, p))), ref, { registries: deps.registries })
        : await pushImage(store, await loadImage(deps.store, build.result), ref, { registries: deps.registries });
      // An index's image manifests come in the order of the platforms given, the index last (signed, not attested).
      const subjects = pushed.manifests.map((manifest, i) => {
        const image = platforms ? platforms[i] : build.result;
        return image ? { manifest, platform: platforms ? platforms[i]?.platform : undefined, attestations: image.attestations } : { manifest };
      });
      const artifacts = await pushSignaturesAndAttestations(store, ref, subjects, { registries: deps.registries, signingKey: deps.signingKey, log });
      const uploaded = pushed.blobs.filter((b) => b.action === 'uploaded').length;
      await record(buildId, ref, { status: 'succeeded', manifestDigest: pushed.manifestDigest, uploadedBlobs: uploaded, artifacts, finishedAt: new Date().toISOString() });
      log.info({ manifestDigest: pushed.manifestDigest, uploaded, signed: deps.signingKey !== undefined }, 'push succeeded');
    } catch (err) {
      // A tenant over its quota stays over it for the few seconds a retry waits.
      const retryable = err instanceof RegistryError ? err.kind === 'unreachable' || err.kind === 'protocol' : !(err instanceof QuotaExceededError);
      const last = !retryable || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      await record(buildId, ref, last ? { status: 'failed', error: (err as Error).message, finishedAt: new Date().toISOString() } : { status: 'queued' });
      log.warn({ err, last }, 'push failed');
      if (!retryable) throw new UnrecoverableError((err as Error).message);
      throw err;
    }
  };
}
