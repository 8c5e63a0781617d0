import { BudgetExceededError } from '../budget.ts';
import { isDigest, type Digest } from '../digest.ts';
import { foreignName } from './foreign-text.ts';
import { RegistryError } from './registries.ts';
import { DEFAULT_REGISTRY_LIMITS, REGISTRY_LIMIT_SETTINGS } from './registry-limits.ts';

export const MEDIA_TYPES = {
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
} as const;

export const MANIFEST_ACCEPT = [MEDIA_TYPES.ociIndex, MEDIA_TYPES.dockerList, MEDIA_TYPES.ociManifest, MEDIA_TYPES.dockerManifest];
const INDEX_TYPES: readonly string[] = [MEDIA_TYPES.ociIndex, MEDIA_TYPES.dockerList];
const IMAGE_MANIFEST_TYPES: readonly string[] = [MEDIA_TYPES.ociManifest, MEDIA_TYPES.dockerManifest];

export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  platform?: { architecture?: string; os?: string; variant?: string };
  urls?: string[];
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
}

export interface IndexManifest {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
}

export interface FetchedManifest {
  /** sha256 of the bytes as received (verified against a pinned digest). */
  digest: Digest;
  mediaType: string;
  bytes: Buffer;
  /** The parsed body: an image manifest or an index / manifest list, per `kind`. */
  kind: 'image' | 'index';
  image?: ImageManifest;
  index?: IndexManifest;
}

function isDescriptor(d: unknown): d is Descriptor {
  const v = d as Partial<Descriptor> | null;
  return !!v && typeof v === 'object' && typeof v.mediaType === 'string' && typeof v.digest === 'string' && isDigest(v.digest) && Number.isSafeInteger(v.size) && (v.size as number) >= 0;
}

/**
 * Parse and check a manifest body: an image manifest (config + layers) or an index/list of at
 * most `maxIndexManifests` entries. What the body says is quoted in errors only as foreignName.
 */
export function parseManifest(bytes: Buffer, digest: Digest, contentType: string | null, what: string, maxIndexManifests = DEFAULT_REGISTRY_LIMITS.maxIndexManifests): FetchedManifest {
  let value: Record<string, unknown>;
  try {
    value = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
  } catch {
    throw new RegistryError(`manifest ${what} is not JSON`, 'invalid');
  }
  if (!value || typeof value !== 'object') throw new RegistryError(`manifest ${what} is not a JSON object`, 'invalid');
  const declared = typeof value.mediaType === 'string' ? value.mediaType : ((contentType ?? '').split(';')[0]?.trim() ?? '');
  if (value.schemaVersion === 1) throw new RegistryError(`manifest ${what} is schema 1, which is not supported`, 'invalid');
  if (value.schemaVersion !== 2)
    throw new RegistryError(`manifest ${what} has schemaVersion ${typeof value.schemaVersion === 'number' ? value.schemaVersion : foreignName(value.schemaVersion, 20)}, expected 2`, 'invalid');
  const isIndex = Array.isArray(value.manifests) && (INDEX_TYPES.includes(declared) || !('config' in value));
  if (isIndex) {
    const manifests = value.manifests as unknown[];
    if (manifests.length > maxIndexManifests) {
      throw new BudgetExceededError(REGISTRY_LIMIT_SETTINGS.maxIndexManifests, maxIndexManifests, `index ${what} lists ${manifests.length} manifests`);
    }
    if (!manifests.every(isDescriptor)) throw new RegistryError(`index ${what} has an invalid descriptor`, 'invalid');
    return { digest, bytes, mediaType: declared || MEDIA_TYPES.ociIndex, kind: 'index', index: value as unknown as IndexManifest };
  }
  if (declared && !IMAGE_MANIFEST_TYPES.includes(declared)) throw new RegistryError(`manifest ${what} has unsupported media type '${foreignName(declared)}'`, 'invalid');
  if (!isDescriptor(value.config) || !Array.isArray(value.layers) || !value.layers.every(isDescriptor)) {
    throw new RegistryError(`manifest ${what} lacks a valid config or layers`, 'invalid');
  }
  return { digest, bytes, mediaType: declared || MEDIA_TYPES.ociManifest, kind: 'image', image: value as unknown as ImageManifest };
}
