import { isDigest, type Digest } from '../../../digest.ts';
import { normalizeArchivePath, type ArchiveReader } from './archive-reader.ts';
import { ArchiveImportError } from './errors.ts';
import { parseRefName, parseReference, pickImage, pickPlatform, type Candidate, type ImageName, type Platform, type Selection } from './select-image.ts';

/** What an archive says about the image picked: where its config and layers are, and its names. */
export interface ImagePlan {
  repoTags: string[];
  config: { path: string; digest?: Digest };
  /** Bottom first; `digest` is the digest of the member as stored (compressed or not), when known. */
  layers: Array<{ path: string; digest?: Digest }>;
}

export const MEDIA_TYPES = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
} as const;

const MAX_INDEX_DEPTH = 4;

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function optionalString(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function blobPath(digest: Digest): string {
  return `blobs/sha256/${digest.slice('sha256:'.length)}`;
}

/** The digest a member's path states: `blobs/sha256/<hex>` (OCI layout, Docker 25) or `<hex>.json` (a docker-archive config). */
export function digestOfPath(path: string): Digest | undefined {
  const m = /^(?:\.\/)?(?:blobs\/sha256\/([a-f0-9]{64})|([a-f0-9]{64})\.json)$/.exec(path);
  const hex = m?.[1] ?? m?.[2];
  return hex ? `sha256:${hex}` : undefined;
}

function namesOf(refs: Iterable<ImageName | undefined>): ImageName[] {
  const out: ImageName[] = [];
  for (const ref of refs) {
    if (ref && !out.some((n) => n.name === ref.name && n.tag === ref.tag)) out.push(ref);
  }
  return out;
}

function formatNames(names: ImageName[]): string[] {
  return names.filter((n) => n.name !== undefined).map((n) => `${n.name}:${n.tag}`);
}

// ---------------------------------------------------------------------------------------------
// docker-archive: manifest.json (Docker ≥ 1.10, podman/skopeo, the seed, Docker 25 with paths
// into blobs/), names from `repositories` and `RepoTags`.

interface ManifestEntry {
  Config: string;
  Layers: string[];
  RepoTags: string[];
}

function parseManifestJson(value: unknown): ManifestEntry[] {
  if (!Array.isArray(value)) throw new ArchiveImportError('manifest.json is not a list of images');
  return value.map((entry, i) => {
    const what = `manifest.json entry ${i + 1}`;
    if (!isObject(entry)) throw new ArchiveImportError(`${what} is not an object`);
    if (typeof entry.Config !== 'string' || entry.Config === '') throw new ArchiveImportError(`${what} has no Config`);
    if (!Array.isArray(entry.Layers) || !entry.Layers.every((l) => typeof l === 'string')) {
      throw new ArchiveImportError(`${what}: Layers is not a list of paths`);
    }
    const tags = entry.RepoTags ?? [];
    if (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string')) throw new ArchiveImportError(`${what}: RepoTags is not a list of names`);
    return { Config: entry.Config, Layers: entry.Layers as string[], RepoTags: tags as string[] };
  });
}

/** `repositories`: `{name: {tag: top-layer-id}}`, the legacy name table. */
function parseRepositories(value: unknown): Array<{ name: string; tag: string; id: string }> {
  if (!isObject(value)) throw new ArchiveImportError('repositories is not an object');
  const out: Array<{ name: string; tag: string; id: string }> = [];
  for (const [name, tags] of Object.entries(value)) {
    if (!isObject(tags)) throw new ArchiveImportError(`repositories: '${name}' is not an object of tags`);
    for (const [tag, id] of Object.entries(tags)) {
      if (typeof id !== 'string') throw new ArchiveImportError(`repositories: '${name}:${tag}' is not a layer id`);
      out.push({ name, tag, id });
    }
  }
  return out;
}

/** The regular file a path names after links, or undefined when there is none. */
function resolvedPath(reader: ArchiveReader, path: string | undefined): string | undefined {
  if (path === undefined) return undefined;
  try {
    return reader.file(path, 'layer').path;
  } catch {
    return undefined;
  }
}

function normalizedPath(path: string | undefined): string | undefined {
  if (path === undefined) return undefined;
  try {
    return normalizeArchivePath(path, 'path');
  } catch {
    return undefined;
  }
}

export async function planDockerArchive(reader: ArchiveReader, sel: Selection): Promise<ImagePlan> {
  const entries = parseManifestJson((await reader.readJson('manifest.json', 'manifest.json')).value);
  const candidates: Array<Candidate<ManifestEntry>> = entries.map((entry) => ({
    names: namesOf(entry.RepoTags.map(parseReference)),
    label: `an untagged image (config ${entry.Config})`,
    value: entry,
  }));

  if (reader.has('repositories')) {
    // The name table points at each image's top layer by its legacy id, `<id>/layer.tar`:
    // directly in Docker's and the seed's layout, through a symlink in containers/image's.
    // Loaders ignore it when manifest.json is there, so a malformed one is skipped, not fatal.
    const repositories = await reader.readJson('repositories', 'repositories').then(
      (json) => parseRepositories(json.value),
      (err: unknown) => {
        if (err instanceof ArchiveImportError) return [];
        throw err;
      },
    );
    const top = (c: Candidate<ManifestEntry>) => c.value.Layers.at(-1);
    for (const { name, tag, id } of repositories) {
      if (!/^[a-f0-9]{64}$/.test(id)) continue;
      const layerPath = `${id}/layer.tar`;
      let owners = candidates.filter((c) => normalizedPath(top(c)) === layerPath);
      const target = owners.length === 0 ? resolvedPath(reader, layerPath) : undefined;
      if (target !== undefined) owners = candidates.filter((c) => resolvedPath(reader, top(c)) === target);
      const [owner] = owners;
      if (owner && owners.length === 1) owner.names = namesOf([...owner.names, { name, tag }]);
    }
  }

  const picked = pickImage(candidates, sel);
  return {
    repoTags: formatNames(picked.names),
    config: { path: picked.value.Config, digest: digestOfPath(picked.value.Config) },
    // Docker 25 points into blobs/, whose names are digests of the bytes stored: check those too.
    layers: picked.value.Layers.map((path) => {
      const digest = path.endsWith('.json') ? undefined : digestOfPath(path);
      return digest ? { path, digest } : { path };
    }),
  };
}

// ---------------------------------------------------------------------------------------------
// OCI image layout (oci-archive; also inside Docker 25's docker-archive): index.json, blobs/.

interface Descriptor {
  mediaType?: string;
  digest: Digest;
  annotations: Record<string, string>;
  platform?: Platform;
}

function parseDescriptor(value: unknown, what: string): Descriptor {
  if (!isObject(value)) throw new ArchiveImportError(`${what} is not a descriptor`);
  const digest = value.digest;
  if (typeof digest !== 'string') throw new ArchiveImportError(`${what} has no digest`);
  if (!isDigest(digest)) throw new ArchiveImportError(`${what}: unsupported digest '${digest.slice(0, 80)}' (only sha256 is supported)`);
  const annotations: Record<string, string> = {};
  if (isObject(value.annotations)) {
    for (const [k, v] of Object.entries(value.annotations)) if (typeof v === 'string') annotations[k] = v;
  }
  const descriptor: Descriptor = { digest, annotations };
  const mediaType = optionalString(value.mediaType);
  if (mediaType !== undefined) descriptor.mediaType = mediaType;
  if (isObject(value.platform)) {
    descriptor.platform = {
      architecture: optionalString(value.platform.architecture),
      os: optionalString(value.platform.os),
      variant: optionalString(value.platform.variant),
    };
  }
  return descriptor;
}

function parseManifestList(value: Json, what: string): Descriptor[] {
  if (!Array.isArray(value.manifests)) throw new ArchiveImportError(`${what} has no manifests list`);
  return value.manifests.map((d, i) => parseDescriptor(d, `${what}: manifest ${i + 1}`));
}

/** Names an index entry records: containerd's full name, else the OCI ref name (often only a tag). */
function namesOfDescriptor(d: Descriptor): ImageName[] {
  const full = d.annotations['io.containerd.image.name'];
  const refName = d.annotations['org.opencontainers.image.ref.name'];
  const fullName = full !== undefined ? parseReference(full) : undefined;
  const ref = refName !== undefined ? parseRefName(refName) : undefined;
  // Docker 25 writes the tag alone as ref.name next to the full name: keep the full one.
  if (fullName && ref && ref.name === undefined && ref.tag === fullName.tag) return [fullName];
  return namesOf([fullName, ref]);
}

async function readBlobJson(reader: ArchiveReader, digest: Digest, what: string): Promise<Json> {
  const blob = await reader.readJson(blobPath(digest), what);
  if (blob.digest !== digest) throw new ArchiveImportError(`${what} ${blob.path} does not match its digest: its content hashes to ${blob.digest}`);
  if (!isObject(blob.value)) throw new ArchiveImportError(`${what} ${blob.path} is not a JSON object`);
  return blob.value;
}

function platformList(ds: Descriptor[]): string {
  const list = ds.map((d) => [d.platform?.os ?? '?', d.platform?.architecture ?? '?', d.platform?.variant].filter(Boolean).join('/'));
  return list.length ? list.join(', ') : 'no images';
}

/** Follow a descriptor through image indexes (resolved to linux/`architecture`) to an image manifest. */
async function resolveManifest(reader: ArchiveReader, d: Descriptor, architecture: string, depth: number): Promise<{ config: Descriptor; layers: Descriptor[] }> {
  const isIndexType = (t: string | undefined) => t === MEDIA_TYPES.ociIndex || t === MEDIA_TYPES.dockerList;
  const what = `${isIndexType(d.mediaType) ? 'image index' : 'manifest'} ${d.digest}`;
  const value = await readBlobJson(reader, d.digest, what);
  const mediaType = d.mediaType ?? optionalString(value.mediaType);
  if (isIndexType(mediaType) || (mediaType === undefined && Array.isArray(value.manifests))) {
    if (depth >= MAX_INDEX_DEPTH) throw new ArchiveImportError(`image indexes nested deeper than ${MAX_INDEX_DEPTH} levels`);
    const manifests = parseManifestList(value, `image index ${d.digest}`);
    const fit = pickPlatform(manifests, architecture);
    if (!fit) throw new ArchiveImportError(`image index ${d.digest} has no linux/${architecture} image; it has ${platformList(manifests)}`);
    return resolveManifest(reader, fit, architecture, depth + 1);
  }
  if (mediaType !== undefined && mediaType !== MEDIA_TYPES.ociManifest && mediaType !== MEDIA_TYPES.dockerManifest) {
    throw new ArchiveImportError(`${what} has the unsupported media type '${mediaType.slice(0, 100)}'`);
  }
  if (!Array.isArray(value.layers)) throw new ArchiveImportError(`${what} has no layers list`);
  const config = parseDescriptor(value.config, `${what}: config`);
  if (config.mediaType !== undefined && config.mediaType !== MEDIA_TYPES.ociConfig && config.mediaType !== MEDIA_TYPES.dockerConfig) {
    throw new ArchiveImportError(`${what} is not a container image: its config has the media type '${config.mediaType.slice(0, 100)}'`);
  }
  return { config, layers: value.layers.map((l, i) => parseDescriptor(l, `${what}: layer ${i + 1}`)) };
}

export async function planOciLayout(reader: ArchiveReader, sel: Selection): Promise<ImagePlan> {
  const index = await reader.readJson('index.json', 'index.json');
  if (!isObject(index.value)) throw new ArchiveImportError('index.json is not an object');
  const descriptors = parseManifestList(index.value, 'index.json');
  const candidates: Array<Candidate<Descriptor>> = descriptors.map((d) => {
    const candidate: Candidate<Descriptor> = { names: namesOfDescriptor(d), label: `an untagged image (manifest ${d.digest})`, value: d };
    if (d.platform) candidate.platform = d.platform;
    return candidate;
  });
  const picked = pickImage(candidates, sel);
  const manifest = await resolveManifest(reader, picked.value, sel.architecture, 0);
  return {
    repoTags: formatNames(picked.names),
    config: { path: blobPath(manifest.config.digest), digest: manifest.config.digest },
    layers: manifest.layers.map((l) => ({ path: blobPath(l.digest), digest: l.digest })),
  };
}
