import type { ResolvedSpec } from '../../builds/spec.ts';
import { type Digest, hexOf } from '../../digest.ts';
import { canonicalJson } from '../../image/canonical-json.ts';

export const IN_TOTO_STATEMENT_TYPE = 'https://in-toto.io/Statement/v1';
export const SLSA_PROVENANCE_PREDICATE_TYPE = 'https://slsa.dev/provenance/v1';
/** The DSSE payload type of an in-toto statement. */
export const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';
/**
 * What a baler build is, for verifiers (README, "Provenance"): externalParameters is the
 * resolved spec, internalParameters what the operator set that changes the bytes. A new version
 * of this URI comes with any change to what those parameters mean.
 */
export const BALER_BUILD_TYPE = 'https://baler.dev/build-types/image/v1';

/** An in-toto ResourceDescriptor (at least one of uri, digest, content). */
export interface ResourceDescriptor {
  name?: string;
  uri?: string;
  digest?: { sha256: string };
  /** Base64 of the resource's bytes. */
  content?: string;
  mediaType?: string;
  annotations?: Record<string, string>;
}

export interface InTotoStatement {
  _type: typeof IN_TOTO_STATEMENT_TYPE;
  subject: Array<{ name: string; digest: { sha256: string } }>;
  predicateType: typeof SLSA_PROVENANCE_PREDICATE_TYPE;
  predicate: SlsaProvenance;
}

export interface SlsaProvenance {
  buildDefinition: {
    buildType: typeof BALER_BUILD_TYPE;
    externalParameters: { spec: ResolvedSpec };
    internalParameters: InternalParameters;
    resolvedDependencies: ResourceDescriptor[];
  };
  runDetails: {
    builder: { id: string; version: { baler: string } };
    metadata: { invocationId: string; startedOn: string; finishedOn: string };
    byproducts: ResourceDescriptor[];
  };
}

interface InternalParameters {
  balerVersion: string;
  /** The build cache's format (result-cache.ts): a cached result is reused only within one. */
  cacheVersion: number;
  /** The VM's kernel and initramfs per platform a script step ran on; absent without one. */
  vmAssets?: Record<string, { kernel: { sha256: string }; initramfs: { sha256: string } }>;
}

/** An input of the build: a stored blob (contents, base archive) or a base image, by digest. */
export interface DependencyInput {
  /** Where the spec names it (`/contents/0/tar`, `/fromImage/blob`) or what it is (`base`). */
  name?: string;
  /** A registry base as `pkg:docker/…@sha256:…`, an earlier build as its API path… */
  uri?: string;
  digest: Digest;
  mediaType?: string;
}

export interface ProvenanceInput {
  /** The image as built (`name:tag`) and its manifest digest (what `skopeo inspect --raw` hashes). */
  subject: { name: string; digest: Digest };
  buildId: string;
  spec: ResolvedSpec;
  /** BALER_BUILDER_ID. */
  builderId: string;
  /** The VM assets a script step ran on, per platform (`linux/amd64`); empty without one. */
  vmAssets: ReadonlyArray<{ platform: string; kernel: Digest; initramfs: Digest }>;
  balerVersion: string;
  cacheVersion: number;
  /** Every input blob and the base image, in the spec's order. */
  resolvedDependencies: readonly DependencyInput[];
  /** ISO 8601. */
  startedOn: string;
  finishedOn: string;
  /** The worker that ran the build (its registry id). */
  worker: string;
  /** The earlier build whose result this one reused from the build cache. */
  cachedFrom?: { buildId: string; provenance?: Digest };
}

/** Names of the byproducts a statement lists (README, "Provenance"). */
export const BYPRODUCT_WORKER = 'worker';
export const BYPRODUCT_CACHED_FROM_BUILD = 'cached-from/build';
export const BYPRODUCT_CACHED_FROM_PROVENANCE = 'cached-from/provenance';

/** The SLSA provenance statement of one build. Pure: the same input gives the same statement. */
export function provenanceStatement(input: ProvenanceInput): InTotoStatement {
  return {
    _type: IN_TOTO_STATEMENT_TYPE,
    subject: [{ name: input.subject.name, digest: sha256Of(input.subject.digest) }],
    predicateType: SLSA_PROVENANCE_PREDICATE_TYPE,
    predicate: {
      buildDefinition: {
        buildType: BALER_BUILD_TYPE,
        externalParameters: { spec: input.spec },
        internalParameters: internalParameters(input),
        resolvedDependencies: input.resolvedDependencies.map(({ digest, ...rest }) => ({ ...rest, digest: sha256Of(digest) })),
      },
      runDetails: {
        builder: { id: input.builderId, version: { baler: input.balerVersion } },
        metadata: { invocationId: input.buildId, startedOn: input.startedOn, finishedOn: input.finishedOn },
        byproducts: byproducts(input),
      },
    },
  };
}

/** The statement's bytes: canonical JSON (sorted keys), so a statement always hashes the same. */
export function statementPayload(statement: InTotoStatement): Buffer {
  return Buffer.from(canonicalJson(statement), 'utf8');
}

function internalParameters(input: ProvenanceInput): InternalParameters {
  const parameters: InternalParameters = { balerVersion: input.balerVersion, cacheVersion: input.cacheVersion };
  if (input.vmAssets.length > 0) {
    parameters.vmAssets = Object.fromEntries(input.vmAssets.map((a) => [a.platform, { kernel: sha256Of(a.kernel), initramfs: sha256Of(a.initramfs) }]));
  }
  return parameters;
}

// A ResourceDescriptor needs a uri, digest or content: identifiers without a digest are content.
function byproducts(input: ProvenanceInput): ResourceDescriptor[] {
  const out: ResourceDescriptor[] = [textResource(BYPRODUCT_WORKER, input.worker)];
  if (input.cachedFrom) {
    out.push(textResource(BYPRODUCT_CACHED_FROM_BUILD, input.cachedFrom.buildId));
    if (input.cachedFrom.provenance) {
      out.push({ name: BYPRODUCT_CACHED_FROM_PROVENANCE, digest: sha256Of(input.cachedFrom.provenance), mediaType: IN_TOTO_PAYLOAD_TYPE });
    }
  }
  return out;
}

function textResource(name: string, text: string): ResourceDescriptor {
  return { name, content: Buffer.from(text, 'utf8').toString('base64'), mediaType: 'text/plain; charset=utf-8' };
}

function sha256Of(digest: Digest): { sha256: string } {
  return { sha256: hexOf(digest) };
}
