/**
 * The seam between a finished build and its attestations (issue 16): for each image a build
 * made, gather what its SBOM and provenance say from what the build already knows (the result,
 * the resolved spec, the stored layers), call the SBOM and provenance libraries, wrap each
 * document in a DSSE envelope (signed when the operator configured a key) and store the
 * envelopes as blobs. The build result names them (`attestations`), so downloads, pushes and
 * garbage collection find them like any other blob of the build.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { hexOf, type Digest } from '../digest.ts';
import { normalizeLayerPath } from '../image/layer-entry.ts';
import type { ContentEntry } from '../image/sources/content-entry.ts';
import type { TarIndexLimits } from '../image/tar-limits.ts';
import type { BlobStore } from '../store/blob-store.ts';
import type { BuildResult, PlatformImage } from '../builds/build-result.ts';
import { entryIsFor, platformOfArchitecture, platformsOf, specForPlatform } from '../builds/platforms.ts';
import { CACHE_VERSION } from '../builds/result-cache.ts';
import { blobReferences, needsVm, type ResolvedSpec } from '../builds/spec.ts';
import type { ContentsComponent, SbomInput } from './attestation-types.ts';
import { ATTESTATION_PAYLOAD_TYPES, type Attested, type ImageAttestations } from './image-attestations.ts';
import { provenanceStatement, statementPayload, type ProvenanceInput } from './provenance/statement.ts';
import { imagePackages } from './sbom/image-packages.ts';
import type { SbomBudgets } from './sbom/sbom-budgets.ts';
import { cycloneDxDocument } from './sbom/cyclonedx.ts';
import { spdxDocument } from './sbom/spdx.ts';
import { dsseEnvelope } from './signing/dsse.ts';
import type { SigningKey } from './signing/signing-key.ts';

/** What attesting needs besides the build: the operator's settings and the store. */
export interface AttestDeps {
  store: BlobStore;
  /** BALER_SIGNING_KEY_FILE, loaded; absent: the envelopes are unsigned (`signatures: []`). */
  signingKey?: SigningKey;
  /** BALER_BUILDER_ID: who the provenance says built it. */
  builderId: string;
  /** baler's version. */
  balerVersion: string;
  /** The worker that ran the build (its registry id), for the provenance. */
  worker: string;
  /** The VM kernel and initramfs of each platform this worker runs (the provenance names the one a script step ran on). */
  vmAssets?: ProvenanceInput['vmAssets'];
  /** What reading an image's package databases may cost; absent: the SBOM library's defaults. */
  packageBudgets?: Partial<SbomBudgets>;
  /** Limits for reading the image's layer tars (the build's: BuildUsage.tarLimits); absent: the defaults. */
  tarLimits?: Partial<TarIndexLimits>;
  signal?: AbortSignal;
}

/** The build an image came from, as its provenance tells it. */
export interface BuildFacts {
  buildId: string;
  spec: ResolvedSpec;
  startedOn: string;
  finishedOn: string;
}

/** One image of a build, as attesting sees it. */
interface ImageFacts {
  platform: string;
  spec: ResolvedSpec;
  imageId: Digest;
  diffIds: Digest[];
  manifestDigest?: Digest;
  base?: { imageId: Digest };
}

/**
 * Attest every image of `result` (each platform's of a multi-platform build). An image whose
 * attestations cannot be made (a package database over its budgets, a store error) keeps its
 * build: it gets `attestationError` instead, and the API says so. Only a stop (cancel, time
 * limit) is thrown, as it would be from any step.
 */
export async function attestResult(result: BuildResult, build: BuildFacts, deps: AttestDeps): Promise<BuildResult> {
  const attest = async <T extends Attested>(image: T, facts: ImageFacts): Promise<T> => {
    try {
      return { ...image, attestations: await attestImage(facts, build, deps) };
    } catch (err) {
      if (deps.signal?.aborted) throw err;
      return { ...image, attestationError: `attestations could not be made: ${(err as Error).message}` };
    }
  };
  if (!result.platforms) return attest(result, singleFacts(result, build.spec));
  const platforms = [];
  for (const image of result.platforms) platforms.push(await attest(image, platformFacts(image, build.spec)));
  return { ...result, platforms };
}

function singleFacts(result: BuildResult, spec: ResolvedSpec): ImageFacts {
  const platform = platformsOf(spec)[0] ?? platformOfArchitecture(spec.architecture);
  return { platform, spec, imageId: result.imageId, diffIds: result.diffIds, base: result.base };
}

function platformFacts(image: PlatformImage, spec: ResolvedSpec): ImageFacts {
  return { platform: image.platform, spec: specForPlatform(spec, image.platform), imageId: image.imageId, diffIds: image.diffIds, manifestDigest: image.manifest.digest, base: image.base };
}

/** One image's SBOMs and provenance, stored as DSSE envelopes. */
export async function attestImage(image: ImageFacts, build: BuildFacts, deps: AttestDeps): Promise<ImageAttestations> {
  const { store, signal } = deps;
  const name = `${build.spec.name}:${build.spec.tag}`;
  const base = baseOf(build.spec, image.base);
  const packages = await imagePackages(image.diffIds, store, { budgets: deps.packageBudgets, tarLimits: deps.tarLimits, signal });
  signal?.throwIfAborted();
  const sbom: SbomInput = {
    name,
    imageId: image.imageId,
    ...(image.manifestDigest ? { manifestDigest: image.manifestDigest } : {}),
    platform: image.platform,
    created: build.spec.created,
    packages,
    contents: contentsComponents(image.spec.contents, image.platform),
    ...(base ? { base } : {}),
    toolVersion: deps.balerVersion,
  };
  const provenance = provenanceInputOf(image, build, deps);
  const store1 = (kind: keyof ImageAttestations, payload: Buffer) => storeEnvelope(store, ATTESTATION_PAYLOAD_TYPES[kind], payload, deps.signingKey);
  return {
    sbomSpdx: await store1('sbomSpdx', Buffer.from(JSON.stringify(spdxDocument(sbom)), 'utf8')),
    sbomCycloneDx: await store1('sbomCycloneDx', Buffer.from(cycloneDxDocument(sbom), 'utf8')),
    provenance: await store1('provenance', statementPayload(provenanceStatement(provenance))),
  };
}

/**
 * A build-cache hit's result as this build's: its images and SBOMs are those of the build that
 * made them (the same blobs), its provenance a new statement of this build naming that build
 * and its provenance (`cachedFrom`). An image the original could not attest stays without.
 */
export async function attestCachedResult(result: BuildResult, build: BuildFacts, cachedFrom: string, deps: AttestDeps): Promise<BuildResult> {
  const again = async <T extends Attested>(image: T, facts: ImageFacts): Promise<T> => {
    if (!image.attestations) return image;
    const input = { ...provenanceInputOf(facts, build, deps), cachedFrom: { buildId: cachedFrom, provenance: image.attestations.provenance } };
    const provenance = await storeEnvelope(deps.store, ATTESTATION_PAYLOAD_TYPES.provenance, statementPayload(provenanceStatement(input)), deps.signingKey);
    return { ...image, attestations: { ...image.attestations, provenance } };
  };
  if (!result.platforms) return again(result, singleFacts(result, build.spec));
  const platforms = [];
  for (const image of result.platforms) platforms.push(await again(image, platformFacts(image, build.spec)));
  return { ...result, platforms };
}

function provenanceInputOf(image: ImageFacts, build: BuildFacts, deps: AttestDeps): ProvenanceInput {
  const base = baseOf(build.spec, image.base);
  return {
    subject: { name: `${build.spec.name}:${build.spec.tag}`, digest: image.manifestDigest ?? image.imageId },
    buildId: build.buildId,
    spec: build.spec,
    builderId: deps.builderId,
    // The VM's kernel and initramfs change a script step's bytes: named when one ran, for its platform.
    vmAssets: needsVm(build.spec) ? (deps.vmAssets ?? []).filter((a) => a.platform === image.platform) : [],
    balerVersion: deps.balerVersion,
    cacheVersion: CACHE_VERSION,
    resolvedDependencies: dependenciesOf(build.spec, image.platform, base),
    startedOn: build.startedOn,
    finishedOn: build.finishedOn,
    worker: deps.worker,
  };
}

async function storeEnvelope(store: BlobStore, payloadType: string, payload: Buffer, key: SigningKey | undefined): Promise<Digest> {
  const envelope = Buffer.from(JSON.stringify(dsseEnvelope(payloadType, payload, key)), 'utf8');
  return (await store.put(Readable.from([envelope]))).digest;
}

/** The base as the SBOM names it: a pinned registry reference by its manifest digest, any other by the image id the build used. */
function baseOf(spec: ResolvedSpec, used: { imageId: Digest } | undefined): SbomInput['base'] {
  const from = spec.fromImage;
  if (!from || !used) return undefined;
  if ('ref' in from) {
    const pinned = from.ref.match(/@(sha256:[a-f0-9]{64})$/);
    return { reference: from.ref, digest: (pinned?.[1] as Digest | undefined) ?? used.imageId };
  }
  if ('build' in from) return { reference: `baler build ${from.build}`, digest: used.imageId };
  return { reference: `blob ${from.blob}`, digest: used.imageId };
}

/**
 * Every input of the image by digest, in the spec's order: its blobs (named by where the spec
 * names them; of a multi-platform spec, the entries of this platform), then the base image as
 * the build used it.
 */
function dependenciesOf(spec: ResolvedSpec, platform: string, base: SbomInput['base']): ProvenanceInput['resolvedDependencies'] {
  const ofPlatform = (pointer: string) => {
    const entry = /^\/contents\/(\d+)\//.exec(pointer)?.[1];
    const content = entry === undefined ? undefined : spec.contents[Number(entry)];
    return content === undefined || entryIsFor(content, platform);
  };
  const blobs = blobReferences(spec)
    .filter((r) => ofPlatform(r.pointer))
    .map((r) => ({ name: r.pointer, digest: r.digest }));
  if (!base) return blobs;
  const from = spec.fromImage;
  const uri = from && 'build' in from ? `/v1/builds/${from.build}` : from && 'ref' in from ? `pkg:docker/${from.ref}` : base.reference;
  return [...blobs, { name: 'base', uri, digest: base.digest }];
}

/**
 * What each contents entry of `platform` put in the image. A file or text entry's one file is
 * known without reading anything (a file's blob digest is its sha256); a tar's files would take
 * reading the tar again, so a tar is named by its blob alone.
 */
export function contentsComponents(contents: ContentEntry[], platform: string): ContentsComponent[] {
  const abs = (path: string) => `/${normalizeLayerPath(path, 'to')}`;
  return contents
    .filter((entry) => entryIsFor(entry, platform))
    .map((entry): ContentsComponent => {
      if ('tar' in entry) return { source: `tar ${entry.tar}`, blob: entry.tar, to: abs(entry.to ?? '/'), files: [] };
      if ('file' in entry) return { source: `file ${entry.file}`, blob: entry.file, to: abs(entry.to), files: [{ path: abs(entry.to), sha256: hexOf(entry.file) }] };
      if ('text' in entry) return { source: 'text', to: abs(entry.to), files: [{ path: abs(entry.to), sha256: createHash('sha256').update(entry.text, 'utf8').digest('hex') }] };
      if ('dir' in entry) return { source: 'dir', to: abs(entry.dir), files: [] };
      return { source: `symlink to ${entry.target}`, to: abs(entry.symlink), files: [] };
    });
}
