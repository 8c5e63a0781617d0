/**
 * What a push adds beside the image, as cosign lays it out (issue 16): for each manifest the
 * push put up, its signature image under `sha256-<hex>.sig` (with the operator's key) and its
 * attestations under `sha256-<hex>.att`; where the registry has the OCI 1.1 referrers API, the
 * attestations again as a referrer of the manifest. Without a key the attestations go up
 * unsigned and there is no `.sig`.
 */
import type { PushedArtifacts } from '../builds/build-record.ts';
import type { Logger } from '../log.ts';
import { openPushTarget, type PushedManifest, type PushOptions, pushInMemoryImage } from '../registry/push.ts';
import type { BlobStore } from '../store/blob-store.ts';
import type { ImageAttestations } from './image-attestations.ts';
import { attestationsForPush } from './push-statements.ts';
import { attestationImage, referrerManifest } from './signing/cosign-attestation.ts';
import { attestationTag, cosignSignature, signatureImage, signatureTag, simpleSigningPayload } from './signing/cosign-signature.ts';
import type { SigningKey } from './signing/signing-key.ts';

/** A manifest the push put up, with what to attach to it. */
export interface PushedSubject {
  manifest: PushedManifest;
  /** The build's platform of an index's image manifest (`linux/arm64`), for the record. */
  platform?: string;
  /** The image's stored attestations; absent for an index, or an image the build could not attest (it is signed only). */
  attestations?: ImageAttestations;
}

export interface PushSignaturesOptions extends PushOptions {
  signingKey?: SigningKey;
  log: Logger;
}

/**
 * Sign and attest every manifest of `subjects` in `refText`'s repository. Errors: RegistryError,
 * or a stored attestation that cannot be read.
 */
export async function pushSignaturesAndAttestations(store: BlobStore, refText: string, subjects: readonly PushedSubject[], opts: PushSignaturesOptions): Promise<PushedArtifacts[]> {
  const { signingKey: key, log } = opts;
  const target = await openPushTarget(store, refText, opts);
  // cosign's `docker-reference`: the repository as pulled, no tag or digest.
  const dockerReference = `${target.host}/${target.repository}`;
  const first = subjects[0]?.manifest;
  const referrers = first ? await target.client.supportsReferrers(target.repository, first.digest) : false;
  if (!key) log.info('no signing key (BALER_SIGNING_KEY_FILE): no .sig pushed, attestations pushed unsigned');
  if (!referrers) log.info('the registry has no OCI referrers API: attestations pushed under .att tags only, no referrer manifests');
  const pushed: PushedArtifacts[] = [];
  for (const { manifest, platform, attestations: stored } of subjects) {
    const artifacts: PushedArtifacts = { subject: manifest.digest, ...(platform ? { platform } : {}) };
    if (key) {
      const payload = simpleSigningPayload(manifest.digest, dockerReference);
      const tag = signatureTag(manifest.digest);
      artifacts.signature = { tag, digest: await pushInMemoryImage(target, signatureImage(payload, cosignSignature(payload, key)), tag) };
    }
    if (stored) {
      const layers = await attestationsForPush(store, stored, { name: dockerReference, digest: manifest.digest }, key);
      const tag = attestationTag(manifest.digest);
      artifacts.attestations = { tag, digest: await pushInMemoryImage(target, attestationImage(layers), tag), signed: key !== undefined };
      if (referrers) {
        const referrer = referrerManifest(layers, manifest);
        artifacts.referrer = await pushInMemoryImage(target, referrer, referrer.manifestDigest);
      }
    }
    log.info({ ...artifacts }, 'signatures and attestations pushed');
    pushed.push(artifacts);
  }
  return pushed;
}
