/**
 * Archives holding one image per platform, written by the test's own tar code: each image is
 * one layer with `/etc/platform` saying its platform, and a config stating it. As an OCI layout
 * (an image index in index.json, nested or flat, its entries with or without `platform`) or as
 * a multi-image docker-archive (manifest.json, one entry per image, as `docker save` of several
 * tags writes it).
 */
import type { Digest } from '../../../src/digest.ts';
import { hex, sha, tarOf, type Member } from './hostile-archives.ts';

export interface ImagePlatform {
  architecture: string;
  variant?: string;
  os?: string;
}

const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar';

export function platformName(p: ImagePlatform): string {
  return [p.os ?? 'linux', p.architecture, p.variant].filter(Boolean).join('/');
}

export interface PlatformImage {
  platform: ImagePlatform;
  layer: Buffer;
  config: string;
  /** The config's digest: the image id an import gives. */
  configDigest: Digest;
  manifest: string;
}

/** One image for `platform`: its layer holds `etc/platform`, its config states the platform (or, `stated: false`, no architecture). */
export function platformImage(platform: ImagePlatform, opts: { stated?: boolean } = {}): PlatformImage {
  const layer = tarOf([
    { name: 'etc/', type: 'directory' },
    { name: 'etc/platform', data: `${platformName(platform)}\n` },
  ]);
  const stated = opts.stated ?? true;
  const config = JSON.stringify({
    ...(stated ? { architecture: platform.architecture, ...(platform.variant ? { variant: platform.variant } : {}) } : {}),
    os: platform.os ?? 'linux',
    config: { Cmd: ['/bin/sh'] },
    rootfs: { type: 'layers', diff_ids: [sha(layer)] },
  });
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: OCI_CONFIG, digest: sha(config), size: config.length },
    layers: [{ mediaType: OCI_LAYER, digest: sha(layer), size: layer.length }],
  });
  return { platform, layer, config, configDigest: sha(config), manifest };
}

function blobsOf(image: PlatformImage): Member[] {
  return [image.manifest, image.config, image.layer].map((data) => ({ name: `blobs/sha256/${hex(sha(data))}`, data }));
}

function descriptor(image: PlatformImage, withPlatform: boolean): Record<string, unknown> {
  const { architecture, variant, os } = image.platform;
  return {
    mediaType: OCI_MANIFEST,
    digest: sha(image.manifest),
    size: image.manifest.length,
    ...(withPlatform ? { platform: { architecture, os: os ?? 'linux', ...(variant ? { variant } : {}) } } : {}),
  };
}

/**
 * An OCI layout (oci-archive) of `images`: `nested` (as skopeo, buildah and Docker 25 write a
 * multi-platform image) index.json names one image index, named `name`, that lists them;
 * else index.json lists them itself, each named `name` when given. `platforms: false` leaves
 * the entries' `platform` out, so only the configs say.
 */
export function ociPlatformArchive(images: PlatformImage[], opts: { nested: boolean; platforms?: boolean; name?: string }): Buffer {
  const entries = images.map((image) => descriptor(image, opts.platforms ?? true));
  const named = (d: Record<string, unknown>) => (opts.name ? { ...d, annotations: { 'org.opencontainers.image.ref.name': opts.name } } : d);
  const blobs = images.flatMap(blobsOf);
  let top: Array<Record<string, unknown>>;
  if (opts.nested) {
    const index = JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: entries });
    blobs.push({ name: `blobs/sha256/${hex(sha(index))}`, data: index });
    top = [named({ mediaType: OCI_INDEX, digest: sha(index), size: index.length })];
  } else {
    top = entries.map(named);
  }
  return tarOf([{ name: 'oci-layout', data: '{"imageLayoutVersion":"1.0.0"}' }, { name: 'index.json', data: JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: top }) }, ...blobs]);
}

/** A docker-archive of several images, each under its RepoTags, as `docker save a:1 b:1` writes it. */
export function dockerPlatformArchive(images: Array<{ image: PlatformImage; repoTags: string[] }>): Buffer {
  const members: Member[] = [];
  const manifest = images.map(({ image, repoTags }, i) => {
    members.push({ name: `${hex(image.configDigest)}.json`, data: image.config }, { name: `l${i}/layer.tar`, data: image.layer });
    return { Config: `${hex(image.configDigest)}.json`, RepoTags: repoTags, Layers: [`l${i}/layer.tar`] };
  });
  return tarOf([...members, { name: 'manifest.json', data: JSON.stringify(manifest) }]);
}
