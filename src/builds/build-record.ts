import type { BuildVerification } from '../attest/verification/verification.ts';
import type { Digest } from '../digest.ts';
import type { ProblemBody } from '../problem.ts';
import type { BuildResult } from './build-result.ts';
import type { ResolvedSpec } from './spec.ts';

export type BuildStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';

export const FINAL_STATUSES: ReadonlySet<BuildStatus> = new Set(['succeeded', 'failed', 'cancelled']);

/** A build as the API shows it (BuildStatus in openapi.yaml). */
export interface BuildRecord {
  id: string;
  /** Who owns it: only this tenant sees it. */
  tenant?: string;
  status: BuildStatus;
  spec: ResolvedSpec;
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  /** The attempt running, or the last one (1 first; a worker that died or failed for reasons not the build's own counts one). */
  attempt?: number;
  /** True when the result came from the build cache; `cachedFrom` is the build that made it. */
  cached?: boolean;
  cachedFrom?: string;
  /**
   * Set while a queued build waits for something other than its turn (no live worker can run
   * it, or its worker lacks disk room for its VM step): why. Any change of status clears it.
   */
  waiting?: string;
  /** Set when the build failed: why, as a problem object. */
  error?: ProblemBody;
  result?: BuildResult;
  /** A multi-platform build's platforms, in order, as they are built (one at a time): each one's state, and why it failed. */
  platforms?: PlatformState[];
  /** Pushes of the image to registries, by reference. */
  pushes?: Record<string, PushRecord>;
  /** The worker that took it (its registry id; the last attempt's). */
  worker?: string;
  /** Set on a verification build (`POST /v1/builds/{id}/verify`): the build it rebuilds. */
  verifies?: string;
  /** The newest verification build asked of this one; it may still be queued or running. */
  verificationBuild?: string;
  /** The last finished verification: the rebuild compared with this build. */
  verification?: BuildVerification;
  /** Whether the last verification rebuilt identical bytes; absent when none finished with a verdict. */
  reproducible?: boolean;
}

export interface PushRecord {
  status: 'queued' | 'running' | 'succeeded' | 'failed';
  requestedAt: string;
  finishedAt?: string;
  /** The manifest digest the registry has, once pushed. */
  manifestDigest?: string;
  /** How many blobs had to be uploaded (the rest the registry had, or mounted). */
  uploadedBlobs?: number;
  /** The signatures and attestations pushed beside each manifest (cosign's `.sig`/`.att` tags, OCI referrers). */
  artifacts?: PushedArtifacts[];
  error?: string;
}

/** What a push put up beside one of its manifests (src/attest/push-signatures.ts). */
export interface PushedArtifacts {
  /** The image manifest (or index) signed and attested. */
  subject: Digest;
  platform?: string;
  /** The cosign signature image (`sha256-<hex>.sig`); absent without a signing key. */
  signature?: { tag: string; digest: Digest };
  /** The cosign attestation image (`sha256-<hex>.att`); absent for an index and an image without attestations. */
  attestations?: { tag: string; digest: Digest; signed: boolean };
  /** The referrer manifest (subject = the image manifest), where the registry has the OCI referrers API. */
  referrer?: Digest;
}

/** Where one platform of a multi-platform build is (its image is in the result's `platforms` once built). */
export interface PlatformState {
  platform: string;
  status: 'queued' | 'running' | 'succeeded' | 'failed';
  error?: string;
}
