import type { Readable } from 'node:stream';
import type { BlobStore } from '../../store/blob-store.ts';
import { parallelGzip } from '../gzip/parallel-gzip.ts';
import type { LayerBudgets } from '../build-usage.ts';
import type { Image } from '../image.ts';
import type { InTotoPredicate } from './attestation-manifest.ts';
import { planDockerArchive } from './docker-archive.ts';
import { writeDockerArchiveOci } from './docker-archive-oci.ts';
import { gzipBytePlan } from './gzip-plan.ts';
import type { CompressedLayerIndex } from './layer-compression.ts';
import { writeOciArchive } from './oci-archive.ts';
import { writeOciIndexArchive, type OciIndexLayout } from './oci-index-archive.ts';
import { compressionRefusal, defaultCompression, type OutputCompression, type OutputFormat } from './output-format.ts';
import { writeRootfs } from './rootfs.ts';
import { epochOf, planOutput, tarBytePlan, type SinkOutput } from './tar-plan.ts';

export interface ImageOutputOptions {
  name: string;
  tag: string;
  store: BlobStore;
  /** Default: the format's (defaultCompression). */
  compression?: OutputCompression;
  /** RFC 3339: the time of the outer tar's entries; default the image's `created`. */
  created?: string;
  layerIndex?: CompressedLayerIndex;
  /** What flattening the layers may hold (`rootfs`); absent: the defaults. */
  layerBudgets?: LayerBudgets;
}

export interface ImageOutput extends SinkOutput {
  /** For `Content-Disposition`. */
  filename: string;
}

/** A whole-stream gzip, compressed as it is read (no plan: size unknown until the end). */
function gzipped(source: SinkOutput): SinkOutput {
  let stream: Readable | undefined;
  return {
    mediaType: 'application/gzip',
    get stream() {
      return (stream ??= parallelGzip(source.stream));
    },
  };
}

/** The output with its download file name, without opening its stream. */
function named(out: SinkOutput, filename: string): ImageOutput {
  return {
    filename,
    mediaType: out.mediaType,
    size: out.size,
    plan: out.plan,
    get stream() {
      return out.stream;
    },
  };
}

/**
 * The image in one of the formats: prepares what must be stored before streaming (compressed
 * layers) and resolves with the stream, its media type, its exact size when known, and a file
 * name. A compression the format does not allow is a caller's bug (the API refuses it first).
 */
export async function writeImage(format: OutputFormat, image: Image, opts: ImageOutputOptions): Promise<ImageOutput> {
  const compression = opts.compression ?? defaultCompression(format);
  const refusal = compressionRefusal(format, compression);
  if (refusal) throw new Error(`compression ${refusal}`);
  const base = `${opts.name.replaceAll('/', '_')}-${opts.tag}`;
  const refName = `${opts.name}:${opts.tag}`;
  const created = opts.created ?? (JSON.parse(image.config) as { created: string }).created;
  switch (format) {
    case 'docker-archive': {
      const tar = tarBytePlan(planDockerArchive(image, { name: opts.name, tag: opts.tag }, epochOf(created)));
      return compression === 'gzip'
        ? named(planOutput(await gzipBytePlan(tar, opts.store, opts.layerIndex), opts.store, 'application/gzip'), `${base}.tar.gz`)
        : named(planOutput(tar, opts.store, 'application/x-tar'), `${base}.tar`);
    }
    case 'docker-archive-oci': {
      const out = await writeDockerArchiveOci(image, { refName, store: opts.store, created, layerIndex: opts.layerIndex, compression: compression as 'none' | 'gzip' });
      return named(out, `${base}.tar`);
    }
    case 'oci-archive': {
      const out = await writeOciArchive(image, { refName, store: opts.store, created, layerIndex: opts.layerIndex, compression });
      return named(out, `${base}.oci.tar`);
    }
    case 'rootfs': {
      const out = await writeRootfs(image, { store: opts.store, budgets: opts.layerBudgets });
      // A flattened rootfs reads many small ranges of the layers: compressed as a stream.
      return compression === 'gzip' ? named(gzipped(out), `${base}.rootfs.tar.gz`) : named(out, `${base}.rootfs.tar`);
    }
  }
}

/**
 * Several images (one per platform) as one `oci-archive` holding their image index
 * (oci-index-archive.ts), with its download file name and the layout (the index's digest).
 */
export async function writeImageIndex(
  images: Image[],
  opts: ImageOutputOptions & { compression: OutputCompression; attestations?: ReadonlyArray<readonly InTotoPredicate[] | undefined> },
): Promise<ImageOutput & { layout: OciIndexLayout }> {
  const refusal = compressionRefusal('oci-archive', opts.compression);
  if (refusal) throw new Error(`compression ${refusal}`);
  const { output, layout } = await writeOciIndexArchive(images, {
    refName: `${opts.name}:${opts.tag}`,
    store: opts.store,
    created: opts.created,
    layerIndex: opts.layerIndex,
    compression: opts.compression,
    attestations: opts.attestations,
  });
  const out = named(output, `${opts.name.replaceAll('/', '_')}-${opts.tag}.oci.tar`);
  return Object.assign(out, { layout });
}
