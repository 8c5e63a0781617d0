/**
 * Image archives no tool would write, made in memory with baler's tar header encoder: the
 * building blocks (tars, configs, a minimal docker-archive) and structure-aware generators of
 * pathological ones (thousands of images and names, wide and deep OCI indexes, many members,
 * a compressed archive that asks for a huge window).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { crc32 } from 'node:zlib';
import type { Digest } from '../../../src/digest.ts';
import type { EntryType } from '../../../src/image/tar-entry.ts';
import { encodeHeader } from '../../../src/image/tar-writer.ts';

export interface Member {
  name: string;
  data?: Buffer | string;
  type?: EntryType;
  linkname?: string;
}

export function tarOf(members: Member[]): Buffer {
  const parts: Buffer[] = [];
  for (const m of members) {
    const data = Buffer.from(m.data ?? '');
    const type = m.type ?? 'file';
    parts.push(encodeHeader({ name: m.name, type, mode: 0o644, uid: 0, gid: 0, size: type === 'file' ? data.length : 0, mtime: 0, linkname: m.linkname ?? '' }));
    if (type === 'file' && data.length > 0) parts.push(data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

export const sha = (data: Buffer | string): Digest => `sha256:${createHash('sha256').update(data).digest('hex')}`;
export const hex = (d: Digest) => d.slice(7);

/** A valid layer tar. */
export const LAYER = tarOf([
  { name: 'etc/', type: 'directory' },
  { name: 'etc/hello', data: 'hello\n' },
]);

export function configFor(diffIds: Digest[]): string {
  return JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: ['/bin/sh'] }, rootfs: { type: 'layers', diff_ids: diffIds } });
}

/** A docker-archive: `layers` as `<i>/layer.tar` members, config and manifest.json as given or made to fit. */
export function dockerArchive(layers: Buffer[], opts: { diffIds?: Digest[]; layerPaths?: string[]; extra?: Member[]; repoTags?: string[] } = {}): Buffer {
  const config = configFor(opts.diffIds ?? layers.map(sha));
  const layerPaths = opts.layerPaths ?? layers.map((_, i) => `l${i}/layer.tar`);
  return tarOf([
    ...layers.map((data, i) => ({ name: `l${i}/layer.tar`, data })),
    { name: `${hex(sha(config))}.json`, data: config },
    { name: 'manifest.json', data: JSON.stringify([{ Config: `${hex(sha(config))}.json`, RepoTags: opts.repoTags ?? ['x/y:1'], Layers: layerPaths }]) },
    ...(opts.extra ?? []),
  ]);
}

/**
 * A docker-archive of `images` one-layer images named only by `repositories`, one name each
 * (`repo/<i>:latest`, pointing at image i's top layer by its legacy id), as old Docker and
 * containers/image write them: `direct`, the layer is `<id>/layer.tar` itself (Docker ≤ 1.9,
 * nixpkgs dockerTools); `linked`, manifest.json names `<blob>.tar` and `<id>/layer.tar` is a symlink to it
 * (containers/image), so matching a name to an image means following links. Only image
 * `target` has a real layer and config; the others' are empty or missing, which planning
 * never reads.
 */
export function manyImagesArchive(opts: { images: number; layout: 'direct' | 'linked'; target: number; tagsPerImage?: number }): { archive: Buffer; config: Digest } {
  const config = configFor([sha(LAYER)]);
  const members: Member[] = [{ name: `${hex(sha(config))}.json`, data: config }];
  const manifest: Array<{ Config: string; RepoTags: string[] | null; Layers: string[] }> = [];
  const repositories: Record<string, Record<string, string>> = {};
  for (let i = 0; i < opts.images; i++) {
    // Distinct 64-hex names, cheaper than hashes.
    const id = `a${i.toString(16).padStart(63, '0')}`;
    const blob = `b${i.toString(16).padStart(63, '0')}`;
    const layer = i === opts.target ? LAYER : Buffer.alloc(0);
    let top: string;
    if (opts.layout === 'direct') {
      top = `${id}/layer.tar`;
      if (i === opts.target) members.push({ name: top, data: layer });
    } else {
      top = `${blob}.tar`;
      members.push({ name: top, data: layer }, { name: `${id}/layer.tar`, type: 'symlink', linkname: `../${blob}.tar` });
    }
    const tags = Array.from({ length: opts.tagsPerImage ?? 0 }, (_, t) => `tagged/${i}:${t}`);
    manifest.push({ Config: `${i === opts.target ? hex(sha(config)) : `c${i.toString(16).padStart(63, '0')}`}.json`, RepoTags: tags.length ? tags : null, Layers: [top] });
    repositories[`repo/${i}`] = { latest: id };
  }
  members.push({ name: 'manifest.json', data: JSON.stringify(manifest) }, { name: 'repositories', data: JSON.stringify(repositories) });
  return { archive: tarOf(members), config: sha(config) };
}

/** One image (the valid LAYER) recorded under `names` RepoTags, all different. */
export function manyNamesArchive(names: number): Buffer {
  return dockerArchive([LAYER], { repoTags: Array.from({ length: names }, (_, i) => `n/${i}:1`) });
}

const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

/** An image manifest for the valid LAYER, with `extraLayers` more descriptors after it (the last one malformed). */
function ociImage(extraLayers = 0): { manifest: string; blobs: Member[] } {
  const config = configFor([sha(LAYER)]);
  const layers: unknown[] = [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha(LAYER), size: LAYER.length }];
  for (let i = 0; i < extraLayers; i++) layers.push(i === extraLayers - 1 ? 'not a descriptor' : layers[0]);
  const manifest = JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length }, layers });
  return {
    manifest,
    blobs: [
      { name: `blobs/sha256/${hex(sha(manifest))}`, data: manifest },
      { name: `blobs/sha256/${hex(sha(config))}`, data: config },
      { name: `blobs/sha256/${hex(sha(LAYER))}`, data: LAYER },
    ],
  };
}

function ociLayout(indexManifests: unknown[], blobs: Member[]): Buffer {
  return tarOf([{ name: 'oci-layout', data: '{"imageLayoutVersion":"1.0.0"}' }, { name: 'index.json', data: JSON.stringify({ schemaVersion: 2, manifests: indexManifests }) }, ...blobs]);
}

/**
 * An OCI layout whose index.json lists `images` manifests, each named by both name
 * annotations (`wide/<i>:1`, ref name `<i>`); the first is a real amd64 image.
 */
export function wideOciIndex(images: number): Buffer {
  const image = ociImage();
  const descriptors = Array.from({ length: images }, (_, i) => ({
    mediaType: OCI_MANIFEST,
    digest: i === 0 ? sha(image.manifest) : sha(`manifest ${i}`),
    size: 1,
    annotations: { 'io.containerd.image.name': `wide/${i}:1`, 'org.opencontainers.image.ref.name': `${i}` },
  }));
  return ociLayout(descriptors, image.blobs);
}

/**
 * An OCI layout whose index.json points at a chain of `depth` nested indexes; the innermost
 * lists `width` manifests for linux/amd64 (the first real), each other level one index.
 */
export function nestedOciIndex(depth: number, width = 1): Buffer {
  const image = ociImage();
  const blobs = [...image.blobs];
  let inner = JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: Array.from({ length: width }, (_, i) => ({
      mediaType: OCI_MANIFEST,
      digest: i === 0 ? sha(image.manifest) : sha(`manifest ${i}`),
      size: 1,
      platform: { os: 'linux', architecture: i === 0 ? 'amd64' : `arch${i}` },
    })),
  });
  for (let level = 1; level < depth; level++) {
    blobs.push({ name: `blobs/sha256/${hex(sha(inner))}`, data: inner });
    inner = JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_INDEX, digest: sha(inner), size: inner.length, platform: { os: 'linux', architecture: 'amd64' } }] });
  }
  blobs.push({ name: `blobs/sha256/${hex(sha(inner))}`, data: inner });
  return ociLayout([{ mediaType: OCI_INDEX, digest: sha(inner), size: inner.length }], blobs);
}

/** An OCI layout of one image listing 1 + `extraLayers` layers, the last of them malformed. */
export function tallOciImage(extraLayers: number): Buffer {
  const image = ociImage(extraLayers);
  return ociLayout([{ mediaType: OCI_MANIFEST, digest: sha(image.manifest), size: image.manifest.length }], image.blobs);
}

/** A valid archive followed by `count` more (empty) members. */
export function manyMembersArchive(count: number): Buffer {
  return dockerArchive([LAYER], { extra: Array.from({ length: count }, (_, i) => ({ name: `pad/${i}` })) });
}

/**
 * `data` compressed by xz, its block header then made to ask for a dictionary of `dictMiB`
 * (xz wrote a small one: the data decodes the same; only the memory asked for differs).
 */
export function xzWithDictionary(data: Buffer, dictMiB: number): Buffer {
  const xz = execFileSync('xz', ['-z', '-c', '-q', '--format=xz', '--check=crc32', '--lzma2=dict=4KiB'], { input: data, maxBuffer: 1024 ** 3 });
  // Stream header (12 bytes), then the block header: size, flags, filter 0x21 (LZMA2), its
  // 1-byte properties (the dictionary size), padding, CRC32 of all before it.
  const headerSize = ((xz[12] ?? 0) + 1) * 4;
  if (xz[13] !== 0 || xz[14] !== 0x21 || xz[15] !== 1) throw new Error('unexpected xz block header');
  // Property byte b: (2 | (b & 1)) << (b / 2 + 11) bytes, so 2^k MiB for even b = 2k + 16.
  xz[16] = 2 * Math.log2(dictMiB) + 16;
  xz.writeUInt32LE(crc32(xz.subarray(12, 12 + headerSize - 4)), 12 + headerSize - 4);
  return xz;
}
