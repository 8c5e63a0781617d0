import { canonicalJson } from '../canonical-json.ts';
import type { Image } from '../image.ts';
import { OCI_ARCHIVE_MEDIA_TYPE, layoutEntries, planOciLayout, type OciArchiveOptions } from './oci-archive.ts';
import { plannedTar, type SinkOutput } from './tar-plan.ts';

export interface DockerArchiveOciOptions extends Omit<OciArchiveOptions, 'compression'> {
  /**
   * Layer blobs: `none` (default; what `docker save` 25+ writes) or `gzip`. Not zstd: the
   * importer of Docker ≥ 25 with the containerd image store labels every compressed layer
   * of a docker-archive as gzip.
   */
  compression?: 'none' | 'gzip';
}

/**
 * The image as `docker save` of Docker ≥ 25 writes it: the OCI image layout of `oci-archive`
 * (`oci-layout`, `index.json`, `blobs/sha256/…`) plus the classic `manifest.json`, whose
 * `Config` and `Layers` are paths into `blobs/`, and `repositories`.
 *
 * - dockerd before 25 (and Docker 25+ with the graphdriver store) reads only `manifest.json`:
 *   it decompresses each layer it names if needed and checks it against its diff_id.
 * - containerd's importer (Docker 25+ with the containerd store) reads `index.json`.
 * - podman/skopeo take it as an OCI archive; the image name comes from the
 *   `io.containerd.image.name` annotation.
 *
 * `repositories` maps the name and tag to the top layer's blob, as Docker 25 writes it (no
 * v1 layer directories here, so not a legacy id). Deterministic; streams blobs from the store.
 */
export async function writeDockerArchiveOci(image: Image, opts: DockerArchiveOciOptions): Promise<SinkOutput> {
  const layout = await planOciLayout(image, { ...opts, compression: opts.compression ?? 'none' });
  const repoTag = `${layout.name}:${layout.tag}`;
  const top = layout.layerPaths.at(-1);
  const extra = {
    'manifest.json': canonicalJson([{ Config: layout.configPath, Layers: layout.layerPaths, RepoTags: [repoTag] }]),
    repositories: canonicalJson(top ? { [layout.name]: { [layout.tag]: top.slice('blobs/sha256/'.length) } } : {}),
  };
  return plannedTar(layoutEntries(layout, extra), opts.store, OCI_ARCHIVE_MEDIA_TYPE);
}
