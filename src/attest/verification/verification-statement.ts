import { type Digest, hexOf } from '../../digest.ts';
import { canonicalJson } from '../../image/canonical-json.ts';
import { IN_TOTO_STATEMENT_TYPE } from '../provenance/statement.ts';
import type { BuildVerification } from './verification.ts';

/**
 * What a baler verification is (README, "Rebuild to verify"): the original build rebuilt from
 * its resolved spec with no cache, and its layers, config and archive compared by digest. A new
 * version of this URI comes with any change to what the predicate's fields mean.
 */
export const VERIFICATION_PREDICATE_TYPE = 'https://baler.dev/verification/v1';

export interface VerificationStatementInput {
  /** The original image as built (`name:tag`) and its config digest (its image id). */
  subject: { name: string; digest: Digest };
  original: { buildId: string; archive: Digest };
  rebuilt: { buildId: string; imageId: Digest; archive: Digest };
  verification: Omit<BuildVerification, 'statement' | 'error'>;
}

export interface VerificationStatement {
  _type: typeof IN_TOTO_STATEMENT_TYPE;
  subject: Array<{ name: string; digest: { sha256: string } }>;
  predicateType: typeof VERIFICATION_PREDICATE_TYPE;
  predicate: {
    original: { buildId: string; archive: { sha256: string } };
    rebuild: { buildId: string; imageId: { sha256: string }; archive: { sha256: string } };
    reproducible: boolean;
    layers: BuildVerification['layers'];
    config: BuildVerification['config'];
    archive: BuildVerification['archive'];
    firstDifference?: BuildVerification['firstDifference'];
    workers?: BuildVerification['workers'];
    verifiedAt: string;
  };
}

/** The in-toto Statement v1 of a verification. Pure: the same input gives the same statement. */
export function verificationStatement(input: VerificationStatementInput): VerificationStatement {
  const v = input.verification;
  return {
    _type: IN_TOTO_STATEMENT_TYPE,
    subject: [{ name: input.subject.name, digest: { sha256: hexOf(input.subject.digest) } }],
    predicateType: VERIFICATION_PREDICATE_TYPE,
    predicate: {
      original: { buildId: input.original.buildId, archive: { sha256: hexOf(input.original.archive) } },
      rebuild: { buildId: input.rebuilt.buildId, imageId: { sha256: hexOf(input.rebuilt.imageId) }, archive: { sha256: hexOf(input.rebuilt.archive) } },
      reproducible: v.reproducible ?? false,
      layers: v.layers,
      config: v.config,
      archive: v.archive,
      firstDifference: v.firstDifference,
      workers: v.workers,
      verifiedAt: v.verifiedAt,
    },
  };
}

/** The statement's bytes: canonical JSON (sorted keys; absent fields left out). */
export function verificationPayload(statement: VerificationStatement): Buffer {
  return Buffer.from(canonicalJson(statement), 'utf8');
}
