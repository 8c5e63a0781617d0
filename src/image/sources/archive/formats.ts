import { isDigest, type Digest } from '../../../digest.ts';
import { normalizeArchivePath, type ArchiveReader } from './archive-reader.ts';
import { overBudget, type ArchiveBudgets } from './budgets.ts';
import { listSome } from './error-text.ts';
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

/** What planning may cost: the archive's budgets, and the layers the image may have. */
export interface PlanLimits {
  budgets: Pick<ArchiveBudgets, 'maxImages' | 'maxNames'>;
  maxLayers: number;
}

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

/** The names, each once, in their first order. */
function namesOf(refs: Iterable<ImageName | undefined>): ImageName[] {
  const seen = new Map<string, ImageName>();
  for (const ref of refs) {
    if (!ref) continue;
    // Length-prefixed, so no name and tag run into another pair; `:` alone is "tag only".
    const key = ref.name === undefined ? `:${ref.tag}` : `${ref.name.length}:${ref.name}${ref.tag}`;
    if (!seen.has(key)) seen.set(key, ref);
  }
  return [...seen.values()];
}

/** Counts the names an archive records against its budget, as they are read. */
class NameCount {
  private count = 0;
  constructor(private readonly max: number) {}

  add(n: number): void {
    this.count += n;
    if (this.count > this.max) throw overBudget('maxNames', this.max, `the archive records more than ${this.max} image names`);
  }
}

function checkImageCount(count: number, max: number, where: string): void {
  if (count > max) throw overBudget('maxImages', max, `${where} lists ${count} images, more than ${max}`);
}

/** The image's layers against the limit: Docker refuses images deeper than 125 layers. */
export function checkLayerCount(count: number, maxLayers: number): void {
  if (count > maxLayers) throw new ArchiveImportError(`the image has ${count} layers, more than the limit of ${maxLayers}`);
}

/** Items grouped by a key; items without one are left out. */
function groupBy<T>(items: readonly T[], keyOf: (item: T) => string | undefined): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const key = keyOf(item);
    if (key === undefined) continue;
    const group = groups.get(key);
    if (group) group.push(item);
    else groups.set(key, [item]);
  }
  return groups;
}

function formatNames(names: ImageName[]): string[] {
  return names.filter((n) => n.name !== undefined).map((n) => `${n.name}:${n.tag}`);
}

// ---------------------------------------------------------------------------------------------
// docker-archive: manifest.json (Docker ≥ 1.10, podman/skopeo, nixpkgs dockerTools, Docker 25 with paths
// into blobs/), names from `repositories` and `RepoTags`.

interface ManifestEntry {
  Config: string;
  Layers: string[];
  RepoTags: string[];
}

function parseManifestJson(value: unknown, limits: PlanLimits, names: NameCount): ManifestEntry[] {
  if (!Array.isArray(value)) throw new ArchiveImportError('manifest.json is not a list of images');
  checkImageCount(value.length, limits.budgets.maxImages, 'manifest.json');
  return value.map((entry, i) => {
    const what = `manifest.json entry ${i + 1}`;
    if (!isObject(entry)) throw new ArchiveImportError(`${what} is not an object`);
    if (typeof entry.Config !== 'string' || entry.Config === '') throw new ArchiveImportError(`${what} has no Config`);
    if (!Array.isArray(entry.Layers) || !entry.Layers.every((l) => typeof l === 'string')) {
      throw new ArchiveImportError(`${what}: Layers is not a list of paths`);
    }
    const tags = entry.RepoTags ?? [];
    if (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string')) throw new ArchiveImportError(`${what}: RepoTags is not a list of names`);
    names.add(tags.length);
    return { Config: entry.Config, Layers: entry.Layers as string[], RepoTags: tags as string[] };
  });
}

/** `repositories`: `{name: {tag: top-layer-id}}`, the legacy name table. */
function parseRepositories(value: unknown, names: NameCount): Array<{ name: string; tag: string; id: string }> {
  if (!isObject(value)) throw new ArchiveImportError('repositories is not an object');
  const out: Array<{ name: string; tag: string; id: string }> = [];
  // Counted as they are read: no copy of an oversized table is made before the budget speaks.
  for (const name of Object.keys(value)) {
    const tags = value[name];
    if (!isObject(tags)) throw new ArchiveImportError(`repositories: '${name}' is not an object of tags`);
    for (const tag of Object.keys(tags)) {
      names.add(1);
      const id = tags[tag];
      if (typeof id !== 'string') throw new ArchiveImportError(`repositories: '${name}:${tag}' is not a layer id`);
      out.push({ name, tag, id });
    }
  }
  return out;
}

/**
 * Add the names of `repositories` to the images they point at. The table points at each
 * image's top layer by its legacy id, `<id>/layer.tar`: directly in Docker's and nixpkgs dockerTools'
 * layout, through a symlink in containers/image's. A name goes to the one image whose top
 * layer is that path, or failing that, the same file after links; none or several: no one.
 * Candidates are indexed by both paths once and each path is resolved once, so the work
 * grows with images + names, not their product.
 */
function nameByRepositories(reader: ArchiveReader, candidates: Array<Candidate<ManifestEntry>>, repositories: Array<{ name: string; tag: string; id: string }>): void {
  const top = (c: Candidate<ManifestEntry>) => c.value.Layers.at(-1);
  const resolved = new Map<string, string | undefined>();
  const resolve = (path: string | undefined): string | undefined => {
    if (path === undefined) return undefined;
    if (!resolved.has(path)) resolved.set(path, resolvedPath(reader, path));
    return resolved.get(path);
  };
  const byTop = groupBy(candidates, (c) => normalizedPath(top(c)));
  let byResolvedTop: Map<string, Array<Candidate<ManifestEntry>>> | undefined;
  const added = new Map<Candidate<ManifestEntry>, ImageName[]>();
  for (const { name, tag, id } of repositories) {
    if (!/^[a-f0-9]{64}$/.test(id)) continue;
    const layerPath = `${id}/layer.tar`;
    let owners = byTop.get(layerPath);
    if (owners === undefined) {
      const target = resolve(layerPath);
      if (target === undefined) continue;
      byResolvedTop ??= groupBy(candidates, (c) => resolve(top(c)));
      owners = byResolvedTop.get(target);
    }
    const [owner] = owners ?? [];
    if (owner && owners?.length === 1) {
      const list = added.get(owner);
      if (list) list.push({ name, tag });
      else added.set(owner, [{ name, tag }]);
    }
  }
  for (const [owner, list] of added) owner.names = namesOf([...owner.names, ...list]);
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

export async function planDockerArchive(reader: ArchiveReader, sel: Selection, limits: PlanLimits): Promise<ImagePlan> {
  const names = new NameCount(limits.budgets.maxNames);
  const entries = parseManifestJson((await reader.readJson('manifest.json', 'manifest.json')).value, limits, names);
  const candidates: Array<Candidate<ManifestEntry>> = entries.map((entry) => ({
    names: namesOf(entry.RepoTags.map(parseReference)),
    label: `an untagged image (config ${entry.Config})`,
    value: entry,
  }));

  if (reader.has('repositories')) {
    // Loaders ignore the legacy name table when manifest.json is there, so a malformed one is
    // skipped, not fatal (one over the names budget still fails: the budget is the archive's).
    const repositories = await reader.readJson('repositories', 'repositories').then(
      (json) => parseRepositories(json.value, names),
      (err: unknown) => {
        if (err instanceof ArchiveImportError) return [];
        throw err;
      },
    );
    nameByRepositories(reader, candidates, repositories);
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

/** The annotations that name an image: containerd's full name, the OCI ref name (often only a tag). */
const CONTAINERD_NAME = 'io.containerd.image.name';
const OCI_REF_NAME = 'org.opencontainers.image.ref.name';

interface Descriptor {
  mediaType?: string;
  digest: Digest;
  /** Only the naming ones: the rest are never read, and an index may carry many. */
  annotations: { [CONTAINERD_NAME]?: string; [OCI_REF_NAME]?: string };
  platform?: Platform;
}

function parseDescriptor(value: unknown, what: string): Descriptor {
  if (!isObject(value)) throw new ArchiveImportError(`${what} is not a descriptor`);
  const digest = value.digest;
  if (typeof digest !== 'string') throw new ArchiveImportError(`${what} has no digest`);
  if (!isDigest(digest)) throw new ArchiveImportError(`${what}: unsupported digest '${digest.slice(0, 80)}' (only sha256 is supported)`);
  const annotations: Descriptor['annotations'] = {};
  if (isObject(value.annotations)) {
    for (const key of [CONTAINERD_NAME, OCI_REF_NAME] as const) {
      const v = value.annotations[key];
      if (typeof v === 'string') annotations[key] = v;
    }
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

function parseManifestList(value: Json, what: string, maxImages: number): Descriptor[] {
  if (!Array.isArray(value.manifests)) throw new ArchiveImportError(`${what} has no manifests list`);
  checkImageCount(value.manifests.length, maxImages, what);
  return value.manifests.map((d, i) => parseDescriptor(d, `${what}: manifest ${i + 1}`));
}

/** Names an index entry records: containerd's full name, else the OCI ref name (often only a tag). */
function namesOfDescriptor(d: Descriptor, count: NameCount): ImageName[] {
  const full = d.annotations[CONTAINERD_NAME];
  const refName = d.annotations[OCI_REF_NAME];
  const fullName = full !== undefined ? parseReference(full) : undefined;
  const ref = refName !== undefined ? parseRefName(refName) : undefined;
  count.add((full !== undefined ? 1 : 0) + (refName !== undefined ? 1 : 0));
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
  return list.length ? listSome(list) : 'no images';
}

/** Follow a descriptor through image indexes (resolved to linux/`architecture`) to an image manifest. */
async function resolveManifest(
  reader: ArchiveReader,
  d: Descriptor,
  architecture: string,
  limits: PlanLimits,
  depth: number,
): Promise<{ config: Descriptor; layers: Descriptor[] }> {
  const isIndexType = (t: string | undefined) => t === MEDIA_TYPES.ociIndex || t === MEDIA_TYPES.dockerList;
  const what = `${isIndexType(d.mediaType) ? 'image index' : 'manifest'} ${d.digest}`;
  const value = await readBlobJson(reader, d.digest, what);
  const mediaType = d.mediaType ?? optionalString(value.mediaType);
  if (isIndexType(mediaType) || (mediaType === undefined && Array.isArray(value.manifests))) {
    if (depth >= MAX_INDEX_DEPTH) throw new ArchiveImportError(`image indexes nested deeper than ${MAX_INDEX_DEPTH} levels`);
    const manifests = parseManifestList(value, `image index ${d.digest}`, limits.budgets.maxImages);
    const fit = pickPlatform(manifests, architecture);
    if (!fit) throw new ArchiveImportError(`image index ${d.digest} has no linux/${architecture} image; it has ${platformList(manifests)}`);
    return resolveManifest(reader, fit, architecture, limits, depth + 1);
  }
  if (mediaType !== undefined && mediaType !== MEDIA_TYPES.ociManifest && mediaType !== MEDIA_TYPES.dockerManifest) {
    throw new ArchiveImportError(`${what} has the unsupported media type '${mediaType.slice(0, 100)}'`);
  }
  if (!Array.isArray(value.layers)) throw new ArchiveImportError(`${what} has no layers list`);
  checkLayerCount(value.layers.length, limits.maxLayers);
  const config = parseDescriptor(value.config, `${what}: config`);
  if (config.mediaType !== undefined && config.mediaType !== MEDIA_TYPES.ociConfig && config.mediaType !== MEDIA_TYPES.dockerConfig) {
    throw new ArchiveImportError(`${what} is not a container image: its config has the media type '${config.mediaType.slice(0, 100)}'`);
  }
  return { config, layers: value.layers.map((l, i) => parseDescriptor(l, `${what}: layer ${i + 1}`)) };
}

async function readIndexJson(reader: ArchiveReader, maxImages: number): Promise<Descriptor[]> {
  const index = await reader.readJson('index.json', 'index.json');
  if (!isObject(index.value)) throw new ArchiveImportError('index.json is not an object');
  return parseManifestList(index.value, 'index.json', maxImages);
}

export async function planOciLayout(reader: ArchiveReader, sel: Selection, limits: PlanLimits): Promise<ImagePlan> {
  // Only the descriptors outlive the parse: the document itself is garbage once they are read.
  const descriptors = await readIndexJson(reader, limits.budgets.maxImages);
  const names = new NameCount(limits.budgets.maxNames);
  const candidates: Array<Candidate<Descriptor>> = descriptors.map((d) => {
    const candidate: Candidate<Descriptor> = { names: namesOfDescriptor(d, names), label: `an untagged image (manifest ${d.digest})`, value: d };
    if (d.platform) candidate.platform = d.platform;
    return candidate;
  });
  const picked = pickImage(candidates, sel);
  const manifest = await resolveManifest(reader, picked.value, sel.architecture, limits, 0);
  return {
    repoTags: formatNames(picked.names),
    config: { path: blobPath(manifest.config.digest), digest: manifest.config.digest },
    layers: manifest.layers.map((l) => ({ path: blobPath(l.digest), digest: l.digest })),
  };
}
