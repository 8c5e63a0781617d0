import { isDigest, type Digest } from '../../../digest.ts';
import type { ArchiveReader } from './archive-reader.ts';
import { bestFit, statedPlatform, missingPlatformMessage, platformText, type Platform, type WantedPlatform } from '../../platform.ts';
import { listSome } from './error-text.ts';
import { ArchiveImportError } from './errors.ts';
import { checkImageCount, checkLayerCount, formatNames, isObject, namesOf, NameCount, optionalString, type ImagePlan, type Json, type PlanLimits } from './image-plan.ts';
import { parseRefName, parseReference, pickImage, type Candidate, type ImageName, type Selection } from './select-image.ts';

// OCI image layout (oci-archive; also inside Docker 25's docker-archive): index.json, blobs/.

const MEDIA_TYPES = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
} as const;

const MAX_INDEX_DEPTH = 4;

function blobPath(digest: Digest): string {
  return `blobs/sha256/${digest.slice('sha256:'.length)}`;
}

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
  if (isObject(value.platform)) descriptor.platform = statedPlatform(value.platform);
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

const isIndexType = (t: string | undefined) => t === MEDIA_TYPES.ociIndex || t === MEDIA_TYPES.dockerList;
const isIndexDocument = (value: Json, mediaType: string | undefined) => isIndexType(mediaType) || (mediaType === undefined && Array.isArray(value.manifests));

/** Platforms of one index kept for messages (besides the one that fits): an index may list a thousand. */
const PLATFORMS_KEPT = 8;

/**
 * What the layout states of the platforms a descriptor leads to: its own `platform`, else
 * (read once per digest) the platforms its index's entries state (the best fit for `want`
 * and a few others), or its image's config. An image whose config names no architecture, or a
 * blob that cannot be read, states none (undefined); a budget a blob goes over still fails
 * the import.
 */
class StatedPlatforms {
  private readonly read = new Map<Digest, Platform[] | undefined>();
  constructor(
    private readonly reader: ArchiveReader,
    private readonly limits: PlanLimits,
    private readonly want: WantedPlatform,
  ) {}

  async of(d: Descriptor): Promise<Platform[] | undefined> {
    if (d.platform) return [d.platform];
    if (!this.read.has(d.digest)) this.read.set(d.digest, await this.readPlatforms(d).catch(notStated));
    return this.read.get(d.digest);
  }

  private async readPlatforms(d: Descriptor): Promise<Platform[] | undefined> {
    const value = await readBlobJson(this.reader, d.digest, `manifest ${d.digest}`);
    const mediaType = d.mediaType ?? optionalString(value.mediaType);
    if (isIndexDocument(value, mediaType)) {
      const stated = parseManifestList(value, `image index ${d.digest}`, this.limits.budgets.maxImages).flatMap((m) => (m.platform ? [m.platform] : []));
      const fit = bestFit(stated, (p) => p, this.want);
      const kept = [...(fit ? [fit] : []), ...stated.filter((p) => p !== fit).slice(0, PLATFORMS_KEPT)];
      return kept.length > 0 ? kept : undefined;
    }
    const config = parseDescriptor(value.config, `manifest ${d.digest}: config`);
    const platform = statedPlatform(await readBlobJson(this.reader, config.digest, 'image config'));
    return platform.architecture ? [platform] : undefined;
  }
}

function notStated(err: unknown): undefined {
  if (err instanceof ArchiveImportError) return undefined;
  throw err;
}

/**
 * The entry of an index for `want`: the best fit among those whose descriptor states a
 * platform, else among the others by what their manifests and configs state. None: an
 * ArchiveImportError naming the platforms the index has.
 */
async function pickEntry(manifests: Descriptor[], want: WantedPlatform, stated: StatedPlatforms, what: string): Promise<{ entry: Descriptor; platform: Platform }> {
  const byDescriptor = bestFit(manifests, (m) => m.platform, want);
  if (byDescriptor?.platform) return { entry: byDescriptor, platform: byDescriptor.platform };
  const found: Array<{ entry: Descriptor; platform: Platform }> = [];
  const listed = new Set<string>();
  for (const entry of manifests) {
    const platforms = await stated.of(entry);
    for (const platform of platforms ?? []) {
      listed.add(platformText(platform));
      if (!entry.platform) found.push({ entry, platform });
    }
    if (!platforms) listed.add('unknown platform');
  }
  const fit = bestFit(found, (f) => f.platform, want);
  if (fit) return fit;
  throw new ArchiveImportError(missingPlatformMessage(what, want, listSome([...listed])));
}

/** Follow a descriptor through image indexes (resolved to `want`) to an image manifest, and the platform the last index entry states. */
async function resolveManifest(
  reader: ArchiveReader,
  d: Descriptor,
  want: WantedPlatform,
  stated: StatedPlatforms,
  limits: PlanLimits,
  depth: number,
): Promise<{ config: Descriptor; layers: Descriptor[]; platform?: Platform }> {
  const what = `${isIndexType(d.mediaType) ? 'image index' : 'manifest'} ${d.digest}`;
  const value = await readBlobJson(reader, d.digest, what);
  const mediaType = d.mediaType ?? optionalString(value.mediaType);
  if (isIndexDocument(value, mediaType)) {
    if (depth >= MAX_INDEX_DEPTH) throw new ArchiveImportError(`image indexes nested deeper than ${MAX_INDEX_DEPTH} levels`);
    const manifests = parseManifestList(value, `image index ${d.digest}`, limits.budgets.maxImages);
    const { entry, platform } = await pickEntry(manifests, want, stated, `image index ${d.digest}`);
    const resolved = await resolveManifest(reader, entry, want, stated, limits, depth + 1);
    return { platform, ...resolved };
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

/** The image `sel` picks from an OCI layout's index.json, followed through indexes to its manifest. */
export async function planOciLayout(reader: ArchiveReader, sel: Selection, limits: PlanLimits): Promise<ImagePlan> {
  // Only the descriptors outlive the parse: the document itself is garbage once they are read.
  const descriptors = await readIndexJson(reader, limits.budgets.maxImages);
  const names = new NameCount(limits.budgets.maxNames);
  const candidates: Array<Candidate<Descriptor>> = descriptors.map((d) => ({ names: namesOfDescriptor(d, names), label: `an untagged image (manifest ${d.digest})`, value: d }));
  const stated = new StatedPlatforms(reader, limits, sel);
  const picked = await pickImage(candidates, sel, (c) => stated.of(c.value));
  const manifest = await resolveManifest(reader, picked.value, sel, stated, limits, 0);
  // The platform an index entry states for the image (the deepest one), else the config's decides.
  const platform = manifest.platform ?? picked.value.platform;
  return {
    ...(platform ? { platform } : {}),
    repoTags: formatNames(picked.names),
    config: { path: blobPath(manifest.config.digest), digest: manifest.config.digest },
    layers: manifest.layers.map((l) => ({ path: blobPath(l.digest), digest: l.digest })),
  };
}
