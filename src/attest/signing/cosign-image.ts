/**
 * The small images cosign pushes beside an image (`.sig`, `.att`): layers of bytes with
 * annotations, and a config listing them as go-containerregistry's empty image has, so the
 * bytes are those cosign would write for the same layers.
 */
import { type Digest, digestOf } from '../../digest.ts';
import { canonicalJson } from '../../image/canonical-json.ts';

export const OCI_MANIFEST_MEDIA_TYPE = 'application/vnd.oci.image.manifest.v1+json';
const OCI_CONFIG_MEDIA_TYPE = 'application/vnd.oci.image.config.v1+json';
/** The time cosign gives its images (go-containerregistry's empty image). */
const ZERO_TIME = '0001-01-01T00:00:00Z';

/** A small image to push: its manifest and the blobs it names, each with its digest. */
export interface PushableImage {
  manifest: Buffer;
  manifestDigest: Digest;
  mediaType: typeof OCI_MANIFEST_MEDIA_TYPE;
  blobs: Array<{ digest: Digest; bytes: Buffer; mediaType: string }>;
}

/** One layer of such an image. */
export interface CosignLayer {
  bytes: Buffer;
  mediaType: string;
  annotations: Record<string, string>;
}

/** The layers' blobs, each once (two layers may hold the same bytes). */
export function uniqueBlobs(layers: readonly CosignLayer[]): PushableImage['blobs'] {
  const blobs = new Map<Digest, PushableImage['blobs'][number]>();
  for (const l of layers) {
    const digest = digestOf(l.bytes);
    if (!blobs.has(digest)) blobs.set(digest, { digest, bytes: l.bytes, mediaType: l.mediaType });
  }
  return [...blobs.values()];
}

/** The layers' descriptors, in order. */
export function layerDescriptors(layers: readonly CosignLayer[]) {
  return layers.map((l) => ({ mediaType: l.mediaType, size: l.bytes.length, digest: digestOf(l.bytes), annotations: l.annotations }));
}

/** An image of `layers` with cosign's config. Pure: pushing it (blobs, then the manifest) is the registry client's. */
export function cosignImage(layers: readonly CosignLayer[]): PushableImage {
  const descriptors = layerDescriptors(layers);
  const config = Buffer.from(
    canonicalJson({
      architecture: '',
      config: {},
      created: ZERO_TIME,
      history: descriptors.map(() => ({ created: ZERO_TIME })),
      os: '',
      rootfs: { type: 'layers', diff_ids: descriptors.map((d) => d.digest) },
    }),
    'utf8',
  );
  const configDigest = digestOf(config);
  const manifest = Buffer.from(
    canonicalJson({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST_MEDIA_TYPE,
      config: { mediaType: OCI_CONFIG_MEDIA_TYPE, size: config.length, digest: configDigest },
      layers: descriptors,
    }),
    'utf8',
  );
  return {
    manifest,
    manifestDigest: digestOf(manifest),
    mediaType: OCI_MANIFEST_MEDIA_TYPE,
    blobs: [{ digest: configDigest, bytes: config, mediaType: OCI_CONFIG_MEDIA_TYPE }, ...uniqueBlobs(layers)],
  };
}
