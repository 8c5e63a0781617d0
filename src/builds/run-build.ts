import type { Readable } from 'node:stream';
import { createGzip } from 'node:zlib';
import type { Digest } from '../digest.ts';
import { assembleImage } from '../image/image.ts';
import { MEDIA_TYPE_DOCKER_LAYER, type Layer } from '../image/layer.ts';
import { writeLayerTar } from '../image/layer-writer.ts';
import { writeDockerArchive } from '../image/sinks/docker-archive.ts';
import { resolveContents } from '../image/sources/spec-contents.ts';
import type { BlobStore } from '../store/blob-store.ts';
import { pipeThrough } from '../streams.ts';
import { epochSeconds, type ResolvedSpec } from './spec.ts';

export interface ArchiveInfo {
  digest: Digest;
  size: number;
  mediaType: string;
}

export interface BuildResult {
  imageId: Digest;
  diffIds: Digest[];
  archive: ArchiveInfo;
}

export interface BuildOptions {
  allowDevices: boolean;
  /** Called at each step, for logs and progress. */
  onStep?: (step: string, detail?: Record<string, unknown>) => void;
}

export const ARCHIVE_MEDIA_TYPES = { none: 'application/x-tar', gzip: 'application/gzip' } as const;

/**
 * Build the image a resolved spec describes and store its archive. Every intermediate is
 * content-addressed in the store, so running this again after a crash redoes the work and
 * lands on the same blobs; nothing is visible until it is complete.
 */
export async function runBuild(spec: ResolvedSpec, store: BlobStore, opts: BuildOptions): Promise<BuildResult> {
  const mtime = epochSeconds(spec.created);
  const step = opts.onStep ?? (() => {});

  step('contents');
  const tree = await resolveContents(spec.contents, store, { uid: spec.uid, gid: spec.gid, allowDevices: opts.allowDevices });

  step('layer', { entries: tree.size });
  const layerTar = writeLayerTar(tree.sortedEntries(), store, mtime);
  const stored = await store.put(layerTar.stream);
  const tarsum = await layerTar.tarsum;
  const layer: Layer = {
    diffId: stored.digest,
    digest: stored.digest,
    size: stored.size,
    mediaType: MEDIA_TYPE_DOCKER_LAYER,
    open: () => store.open(stored.digest),
  };

  const image = assembleImage(
    {
      architecture: spec.architecture,
      os: 'linux',
      created: spec.created,
      config: spec.config,
      history: [{ created: spec.created, created_by: 'baler: contents' }],
    },
    [{ layer, tarsum }],
  );

  step('archive', { compression: spec.compression });
  let archive: Readable = writeDockerArchive(image, { name: spec.name, tag: spec.tag }, mtime);
  if (spec.compression === 'gzip') {
    // zlib's gzip header carries no name and mtime 0, so the bytes depend only on the input.
    archive = pipeThrough(archive, createGzip({ level: 6 }));
  }
  const archiveBlob = await store.put(archive);
  return {
    imageId: image.configDigest,
    diffIds: image.layers.map((l) => l.diffId),
    archive: { digest: archiveBlob.digest, size: archiveBlob.size, mediaType: ARCHIVE_MEDIA_TYPES[spec.compression] },
  };
}
