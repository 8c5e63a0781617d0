import { digestOf, hexOf, type Digest } from '../../digest.ts';
import type { BlobStore } from '../../store/blob-store.ts';
import { canonicalJson } from '../canonical-json.ts';
import type { Image } from '../image.ts';
import { compressedLayer, layerIndexOf, OCI_LAYER_MEDIA_TYPES, type CompressedLayerIndex } from './layer-compression.ts';
import type { OutputCompression } from './output-format.ts';
import { epochOf, plannedTar, type PlannedEntry, type SinkOutput } from './tar-plan.ts';

export const OCI_MEDIA_TYPES = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
} as const;

/** The media type of the archive itself (a tar holding an OCI image layout). */
export const OCI_ARCHIVE_MEDIA_TYPE = 'application/x-tar';

const ANNOTATION_REF_NAME = 'org.opencontainers.image.ref.name';
/** containerd's (and so Docker ≥ 25's, buildkit's and podman's) name for the image. */
const ANNOTATION_IMAGE_NAME = 'io.containerd.image.name';

export interface OciArchiveOptions {
  /** `name:tag` (a missing tag means `latest`). */
  refName: string;
  compression: OutputCompression;
  store: BlobStore;
  /** RFC 3339; the time of every entry of the outer tar. Default: the image's `created`. */
  created?: string;
  /** Where compressed layers are remembered; default: `layerIndexOf(store)`. */
  layerIndex?: CompressedLayerIndex;
}

/** `name:tag` → its parts; the tag is what follows the last `:` after the last `/`. */
export function splitRefName(refName: string): { name: string; tag: string } {
  if (refName.includes('@')) throw new Error(`'${refName}' is a digest reference; an archive needs name:tag`);
  const colon = refName.lastIndexOf(':');
  if (colon > refName.lastIndexOf('/')) return { name: refName.slice(0, colon), tag: refName.slice(colon + 1) };
  return { name: refName, tag: 'latest' };
}

/** Docker's normalisation of a repository name: `hello` → `docker.io/library/hello`. */
export function fullyQualifiedName(name: string): string {
  const slash = name.indexOf('/');
  const first = slash === -1 ? '' : name.slice(0, slash);
  if (first && (first.includes('.') || first.includes(':') || first === 'localhost')) return name;
  return slash === -1 ? `docker.io/library/${name}` : `docker.io/${name}`;
}

/** A blob of the layout, ready to be written at `blobs/sha256/<hex>`. */
export interface LayoutBlob {
  digest: Digest;
  size: number;
  /** Held bytes (config, manifest); absent for layer blobs, which are read from the store. */
  bytes?: Buffer;
}

/** What an OCI image layout for one image holds, all digests known, nothing written yet. */
export interface OciLayout {
  blobs: LayoutBlob[];
  manifest: { digest: Digest; size: number; json: string };
  indexJson: string;
  configPath: string;
  /** One path per layer of the image, in order (duplicates repeat the same path). */
  layerPaths: string[];
  name: string;
  tag: string;
  mtime: number;
}

export const blobPath = (digest: Digest): string => `blobs/sha256/${hexOf(digest)}`;

/** One image's part of a layout: its manifest, and the blobs (layers, config, manifest) it adds. */
export interface ImageManifest {
  blobs: LayoutBlob[];
  manifest: { digest: Digest; size: number; json: string };
  /** The platform the index names it by, from its config. */
  platform: { architecture: string; os: string; variant?: string };
  configPath: string;
  layerPaths: string[];
  created?: string;
}

/**
 * Compress (or reuse, from the store) every layer of the image, then write its OCI manifest:
 * the config bytes kept exactly (the OCI config is the Docker config JSON, so the image id
 * stays), in canonical JSON.
 */
export async function planImageManifest(image: Image, opts: Pick<OciArchiveOptions, 'compression' | 'store' | 'layerIndex'>): Promise<ImageManifest> {
  const config = JSON.parse(image.config) as { architecture?: string; os?: string; variant?: string; created?: string };
  const index = opts.layerIndex ?? layerIndexOf(opts.store);
  const layerBlobs = [];
  for (const layer of image.layers) layerBlobs.push(await compressedLayer(opts.store, layer, opts.compression, index));

  const configBytes = Buffer.from(image.config, 'utf8');
  const manifestJson = canonicalJson({
    schemaVersion: 2,
    mediaType: OCI_MEDIA_TYPES.manifest,
    config: { mediaType: OCI_MEDIA_TYPES.config, digest: image.imageId, size: configBytes.length },
    layers: layerBlobs.map((blob) => ({ mediaType: OCI_LAYER_MEDIA_TYPES[opts.compression], digest: blob.digest, size: blob.size })),
  });
  const manifestBytes = Buffer.from(manifestJson, 'utf8');
  const manifest = { digest: digestOf(manifestBytes), size: manifestBytes.length, json: manifestJson };
  return {
    blobs: [...layerBlobs, { digest: image.imageId, size: configBytes.length, bytes: configBytes }, { ...manifest, bytes: manifestBytes }],
    manifest,
    platform: { architecture: config.architecture ?? 'amd64', os: config.os ?? 'linux', variant: config.variant },
    configPath: blobPath(image.imageId),
    layerPaths: layerBlobs.map((blob) => blobPath(blob.digest)),
    created: config.created,
  };
}

/** The layout's entry for `name:tag`: both annotations every reader looks for. */
export function refAnnotations(name: string, tag: string): Record<string, string> {
  return { [ANNOTATION_IMAGE_NAME]: `${fullyQualifiedName(name)}:${tag}`, [ANNOTATION_REF_NAME]: tag };
}

/** One entry per distinct blob (an image may list one layer twice, images share layers), in a fixed order. */
export function distinctBlobs(blobs: LayoutBlob[]): LayoutBlob[] {
  const byDigest = new Map<Digest, LayoutBlob>();
  for (const blob of blobs) byDigest.set(blob.digest, blob);
  return [...byDigest.values()].sort((a, b) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0));
}

/** Lay one image out as OCI: its manifest, and an index naming it. All in canonical JSON. */
export async function planOciLayout(image: Image, opts: OciArchiveOptions): Promise<OciLayout> {
  const { name, tag } = splitRefName(opts.refName);
  const planned = await planImageManifest(image, opts);
  const created = opts.created ?? planned.created;
  if (!created) throw new Error('the image config has no created time; pass created');
  const { manifest, platform } = planned;
  const indexJson = canonicalJson({
    schemaVersion: 2,
    mediaType: OCI_MEDIA_TYPES.index,
    manifests: [{ mediaType: OCI_MEDIA_TYPES.manifest, digest: manifest.digest, size: manifest.size, platform, annotations: refAnnotations(name, tag) }],
  });
  return {
    blobs: distinctBlobs(planned.blobs),
    manifest,
    indexJson,
    configPath: planned.configPath,
    layerPaths: planned.layerPaths,
    name,
    tag,
    mtime: epochOf(created),
  };
}

/**
 * The layout as tar entries, sorted by path as `docker save` (25+) sorts them: `blobs/`,
 * `blobs/sha256/`, the blobs, `index.json`, the `extra` files (e.g. Docker's `manifest.json`,
 * `repositories`) and `oci-layout`. Owners 0, modes 0644/0755, every time `layout.mtime`.
 */
export function layoutEntries(layout: Pick<OciLayout, 'blobs' | 'indexJson' | 'mtime'>, extra: Record<string, string> = {}): PlannedEntry[] {
  const meta = { uid: 0, gid: 0, mtime: layout.mtime };
  const text = (name: string, content: string): PlannedEntry => {
    const bytes = Buffer.from(content, 'utf8');
    return { header: { ...meta, name, type: 'file', mode: 0o644, size: bytes.length }, data: { bytes } };
  };
  const entries: PlannedEntry[] = [
    { header: { ...meta, name: 'blobs/', type: 'directory', mode: 0o755, size: 0 } },
    { header: { ...meta, name: 'blobs/sha256/', type: 'directory', mode: 0o755, size: 0 } },
  ];
  for (const blob of layout.blobs) {
    const header = { ...meta, name: blobPath(blob.digest), type: 'file' as const, mode: 0o644, size: blob.size };
    entries.push({ header, data: blob.bytes ? { bytes: blob.bytes } : { blob: blob.digest, offset: 0 } });
  }
  const files: Record<string, string> = { ...extra, 'index.json': layout.indexJson, 'oci-layout': canonicalJson({ imageLayoutVersion: '1.0.0' }) };
  for (const name of Object.keys(files).sort()) entries.push(text(name, files[name] as string));
  return entries;
}

/**
 * The image as an `oci-archive`: an OCI image layout in a tar (`oci-layout`, `index.json`,
 * `blobs/sha256/…`), layers compressed as asked, deterministically (same image, same
 * options → same bytes). Every compressed layer is in the store before the first byte is
 * written; the tar then streams blobs from the store. Resolves once it can stream, with the
 * exact size.
 */
export async function writeOciArchive(image: Image, opts: OciArchiveOptions): Promise<SinkOutput> {
  const layout = await planOciLayout(image, opts);
  return plannedTar(layoutEntries(layout), opts.store, OCI_ARCHIVE_MEDIA_TYPE);
}
