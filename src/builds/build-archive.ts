import { createHash } from 'node:crypto';
import type { Digest } from '../digest.ts';
import type { LayerBudgets } from '../image/build-usage.ts';
import type { Image } from '../image/image.ts';
import type { InTotoPredicate } from '../image/sinks/attestation-manifest.ts';
import { digestPlan, planSize } from '../image/sinks/byte-plan.ts';
import type { OutputCompression, OutputFormat } from '../image/sinks/output-format.ts';
import { writeImage, writeImageIndex, type ImageOutput } from '../image/sinks/write-image.ts';
import type { BlobStore } from '../store/blob-store.ts';
import type { ResolvedSpec } from './spec.ts';

/**
 * A build's image archive as the result records it. The archive itself is not stored: it is
 * assembled from the stored layer, config and compressed-piece blobs on each download, and
 * its bytes are deterministic, so `digest` and `size` hold for every download.
 */
export interface ArchiveInfo {
  digest: Digest;
  size: number;
  mediaType: string;
  format: OutputFormat;
  compression: OutputCompression;
  /** For Content-Disposition, e.g. `name-tag.tar.gz`. */
  filename: string;
  /** Every stored blob the archive is assembled from (kept while the build is). */
  parts?: Digest[];
}

type SpecNames = Pick<ResolvedSpec, 'name' | 'tag' | 'created'>;

/** The image in one output format, ready to stream (and, when planned, to read by range). */
export function imageOutput(image: Image, spec: SpecNames, format: OutputFormat, compression: OutputCompression, store: BlobStore, layerBudgets?: LayerBudgets): Promise<ImageOutput> {
  return writeImage(format, image, { name: spec.name, tag: spec.tag, store, compression, created: spec.created, layerBudgets });
}

/**
 * What the archive of `format`/`compression` will be: made ready (compressed pieces stored),
 * read once to learn its digest (`onProgress` told the bytes read, of the total when planned),
 * nothing else stored.
 */
export async function describeArchive(
  image: Image,
  spec: SpecNames,
  format: OutputFormat,
  compression: OutputCompression,
  store: BlobStore,
  onProgress?: (bytesDone: number, bytesTotal?: number) => void,
  layerBudgets?: LayerBudgets,
): Promise<ArchiveInfo> {
  const out = await imageOutput(image, spec, format, compression, store, layerBudgets);
  return describeOutput(out, format, compression, store, onProgress);
}

/**
 * Several images' `oci-archive` holding their image index (a multi-platform build's): as
 * imageOutput, with the layout; each image's `attestations` (by the images' order) as an attestation manifest in the image index.
 */
export function indexOutput(
  images: Image[],
  spec: SpecNames,
  compression: OutputCompression,
  store: BlobStore,
  attestations?: ReadonlyArray<readonly InTotoPredicate[] | undefined>,
): ReturnType<typeof writeImageIndex> {
  return writeImageIndex(images, { name: spec.name, tag: spec.tag, store, compression, created: spec.created, attestations });
}

/** An output read once: its digest and size (`onProgress` told the bytes read), and what it is assembled from. */
export async function describeOutput(
  out: ImageOutput,
  format: OutputFormat,
  compression: OutputCompression,
  store: BlobStore,
  onProgress?: (bytesDone: number, bytesTotal?: number) => void,
): Promise<ArchiveInfo> {
  let sum: { digest: Digest; size: number };
  if (out.plan) {
    const total = planSize(out.plan);
    sum = await digestPlan(out.plan, store, onProgress && ((done) => onProgress(done, total)));
  } else {
    const hash = createHash('sha256');
    let size = 0;
    for await (const chunk of out.stream as AsyncIterable<Buffer>) {
      hash.update(chunk);
      size += chunk.length;
      onProgress?.(size);
    }
    sum = { digest: `sha256:${hash.digest('hex')}`, size };
  }
  const parts = out.plan ? [...new Set(out.plan.flatMap((s) => ('blob' in s ? [s.blob] : [])))] : [];
  return { ...sum, mediaType: out.mediaType, format, compression, filename: out.filename, parts };
}
