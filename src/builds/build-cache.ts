import type { Digest } from '../digest.ts';
import type { BlobStore } from '../store/blob-store.ts';
import type { BuildRecord } from './build-record.ts';
import { cacheKey, type ResultCache } from './result-cache.ts';
import { blobsOfResult, type BuildResult } from './build-result.ts';
import type { ResolvedSpec } from './spec.ts';
import { defaultVariant } from './build-platform.ts';

/** A finished build as the build cache keeps it. */
export interface CachedBuild {
  buildId: string;
  result: BuildResult;
}

/** A build-cache hit, with every blob of its result as stored now. */
export interface BuildCacheHit extends CachedBuild {
  blobs: Array<{ digest: Digest; size: number }>;
}

/**
 * The build-cache key of a resolved spec: its canonical hash with everything it builds from
 * pinned (blob digests are in the spec; an earlier build as base by its image id), and the
 * tenant: a hit answers with the build that made it (`cachedFrom`), and its result may hold
 * what a script made at random, so one tenant's builds never answer another's. Null when the
 * input can change under the same spec: a registry tag (it may be moved).
 */
export function buildCacheKey(spec: ResolvedSpec, opts: { tenant: string; base?: BuildRecord; allowDevices: boolean }): string | null {
  const from = spec.fromImage;
  if (from && 'ref' in from && !from.ref.includes('@sha256:')) return null;
  if (from && 'build' in from && !opts.base?.result) return null;
  // Queue order is not part of the image.
  const { priority: _priority, ...inputs } = spec;
  // A multi-platform base is pinned by its index (every platform's image), a single one by its image.
  const baseImage = opts.base?.result?.index?.digest ?? opts.base?.result?.imageId;
  // The variant the config gets (arm64: v8) is in the key: results from before configs had one are not hits.
  const variant = spec.variant ?? defaultVariant(spec.architecture);
  return cacheKey('build', { spec: { ...inputs, variant }, baseImage, allowDevices: opts.allowDevices, tenant: opts.tenant });
}

/** The cached result for `key`, if every blob it names is still stored (garbage collection may have taken some). */
export async function findCachedBuild(cache: ResultCache, store: BlobStore, key: string): Promise<BuildCacheHit | null> {
  const hit = await cache.get<CachedBuild>('build', key);
  if (!hit?.result || !attestedOrTried(hit.result)) return null;
  const blobs: BuildCacheHit['blobs'] = [];
  for (const digest of new Set(blobsOfResult(hit.result))) {
    const stored = await store.stat(digest);
    if (!stored) return null;
    blobs.push({ digest, size: stored.size });
  }
  return { ...hit, blobs };
}

/**
 * Whether the worker attested the result's images (or tried: `attestationError`). A result
 * cached before builds were attested is built again, so that every build has its SBOM and
 * provenance, rather than answered by a build that has none.
 */
function attestedOrTried(result: BuildResult): boolean {
  const images = result.platforms ?? [result];
  return images.every((image) => image.attestations !== undefined || image.attestationError !== undefined);
}
