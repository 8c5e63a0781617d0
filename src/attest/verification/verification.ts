import type { BuildResult } from '../../builds/build-result.ts';
import type { Digest } from '../../digest.ts';
import type { TarDifferenceKind } from '../../image/tar-difference.ts';

/** One layer of the original build beside the rebuild's at the same index. */
export interface LayerComparison {
  index: number;
  /** The original's diff_id; absent when only the rebuild has a layer at this index. */
  diffId?: Digest;
  /** The rebuild's; absent when it has fewer layers. */
  rebuiltDiffId?: Digest;
  match: boolean;
}

/** Where a rebuild first differs: the first layer that does not match, and in it the first path (tar-difference.ts). */
export interface FirstDifference {
  layer: number;
  /** Absent when the layer is missing on one side, or only its tar encoding differs. */
  path?: string;
  what: TarDifferenceKind;
}

/**
 * A build rebuilt with no cache and compared with the original (`verification` on the
 * original's record; BuildVerification in openapi.yaml). `reproducible` and the comparisons are
 * absent when the rebuild failed (`error` says why).
 */
export interface BuildVerification {
  /** The verification build (a build of its own, `verifies` naming the original). */
  buildId: string;
  reproducible?: boolean;
  layers?: LayerComparison[];
  config?: { digest: Digest; rebuiltDigest: Digest; match: boolean };
  archive?: { digest: Digest; rebuiltDigest: Digest; match: boolean };
  firstDifference?: FirstDifference;
  /**
   * The workers that built each (their registry ids): the queue cannot send a build to a given
   * worker, so a rebuild may run where the original did; `different` says whether it did not.
   * `different` is absent when either is not known (a build from before workers were recorded).
   */
  workers?: { original?: string; rebuilt?: string; different?: boolean };
  /** The signed statement of this verification (a DSSE envelope stored as a blob): `GET /v1/builds/{id}/verification`. */
  statement?: Digest;
  /** Why there is no verdict: the verification build failed or was cancelled. */
  error?: string;
  verifiedAt: string;
}

export type ResultComparison = Required<Pick<BuildVerification, 'reproducible' | 'layers' | 'config' | 'archive'>> & { firstMismatchingLayer?: number };

/** Digests side by side: each layer's diff_id (by index), the config's and the archive's. Pure. */
export function compareResults(original: BuildResult, rebuilt: BuildResult): ResultComparison {
  const count = Math.max(original.diffIds.length, rebuilt.diffIds.length);
  const layers: LayerComparison[] = [];
  for (let index = 0; index < count; index++) {
    const diffId = original.diffIds[index];
    const rebuiltDiffId = rebuilt.diffIds[index];
    layers.push({ index, diffId, rebuiltDiffId, match: diffId !== undefined && diffId === rebuiltDiffId });
  }
  const config = { digest: original.imageId, rebuiltDigest: rebuilt.imageId, match: original.imageId === rebuilt.imageId };
  const archive = { digest: original.archive.digest, rebuiltDigest: rebuilt.archive.digest, match: original.archive.digest === rebuilt.archive.digest };
  const firstMismatchingLayer = layers.find((l) => !l.match)?.index;
  return { reproducible: firstMismatchingLayer === undefined && config.match && archive.match, layers, config, archive, firstMismatchingLayer };
}
