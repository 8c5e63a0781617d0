import type { Digest } from '../digest.ts';
import type { Image } from '../image/image.ts';
import { OCI_MEDIA_TYPES, planOciLayout } from '../image/sinks/oci-archive.ts';
import type { CompressedLayerIndex } from '../image/sinks/layer-compression.ts';
import type { BlobStore } from '../store/blob-store.ts';
import { Readable } from 'node:stream';
import { RegistryClient } from './client.ts';
import type { ClientOptions } from './registry-transport.ts';
import { parsePushReference, RegistryError, type Registries } from './registries.ts';
import { registryIndexOf, type RegistryIndex } from './registry-index.ts';

/** Blobs up to this size go up in one PUT; larger ones in PATCH chunks of this size. */
export const DEFAULT_CHUNK_SIZE = 16 * 1024 * 1024;

export interface PushOptions extends ClientOptions {
  registries: Registries;
  chunkSize?: number;
  /** Default: `registryIndexOf(store)` (where blobs were seen, for mounts). */
  index?: RegistryIndex;
  layerIndex?: CompressedLayerIndex;
}

export interface PushResult {
  manifestDigest: Digest;
  /** What happened to each blob (config and distinct layers), for status and tests. */
  blobs: Array<{ digest: Digest; size: number; action: 'existed' | 'mounted' | 'uploaded' }>;
}

/**
 * Push an image to `ref` (`host:port/repo[:tag]`, of an allowed registry): every layer gzip'd
 * (the same cached, deterministic blobs as the oci-archive sink), the config bytes as they are,
 * an OCI image manifest identical to the one the oci-archive sink writes (so the digest is the
 * same). Blobs the repository has (HEAD) are skipped; a blob seen in another repository of the
 * same registry is mounted from there; the rest uploaded (one PUT when small, else PATCH
 * chunks streamed from the store by range). Returns the manifest digest. Errors: RegistryError.
 */
export async function pushImage(store: BlobStore, image: Image, refText: string, opts: PushOptions): Promise<PushResult> {
  const ref = parsePushReference(refText, opts.registries);
  const tag = ref.tag ?? 'latest';
  const client = RegistryClient.forReference(ref, opts.registries, opts);
  const index = opts.index ?? registryIndexOf(store);
  const chunkSize = opts.chunkSize ?? DEFAULT_CHUNK_SIZE;

  const layout = await planOciLayout(image, { refName: `${ref.repository}:${tag}`, compression: 'gzip', store, layerIndex: opts.layerIndex });
  const manifest = JSON.parse(layout.manifest.json) as { layers: Array<{ digest: Digest; size: number }> };
  const configBytes = Buffer.from(image.config, 'utf8');

  await client.ping();
  const blobs: PushResult['blobs'] = [];
  const seen = new Set<Digest>();
  const todo: Array<{ digest: Digest; size: number; open: (start: number, end: number) => Promise<Readable> }> = [
    ...manifest.layers.map((l) => ({ digest: l.digest, size: l.size, open: (start: number, end: number) => store.open(l.digest, { start, end }) })),
    { digest: image.imageId, size: configBytes.length, open: async (start: number, end: number) => Readable.from([configBytes.subarray(start, end + 1)]) },
  ];
  for (const blob of todo) {
    if (seen.has(blob.digest)) continue;
    seen.add(blob.digest);
    blobs.push({ digest: blob.digest, size: blob.size, action: await pushBlob(client, index, ref.repository, blob, chunkSize) });
    await index.addBlobRepo(ref.host, blob.digest, ref.repository);
  }
  const manifestDigest = await client.putManifest(ref.repository, tag, Buffer.from(layout.manifest.json, 'utf8'), OCI_MEDIA_TYPES.manifest);
  if (manifestDigest !== layout.manifest.digest) throw new RegistryError(`manifest digest mismatch after push: ${manifestDigest}`, 'invalid');
  return { manifestDigest, blobs };
}

async function pushBlob(
  client: RegistryClient,
  index: RegistryIndex,
  repository: string,
  blob: { digest: Digest; size: number; open: (start: number, end: number) => Promise<Readable> },
  chunkSize: number,
): Promise<'existed' | 'mounted' | 'uploaded'> {
  const existing = await client.hasBlob(repository, blob.digest, `repository:${repository}:pull,push`);
  if (existing !== null) return 'existed';
  let location: string | null = null;
  for (const from of await index.reposWithBlob(client.host, blob.digest)) {
    if (from === repository) continue;
    const mount = await client.mountBlob(repository, blob.digest, from);
    if (mount.mounted) return 'mounted';
    location = mount.location;
    if (location) break;
  }
  location ??= await client.startUpload(repository);
  await client.uploadBlob(repository, location, blob, blob.open, chunkSize);
  return 'uploaded';
}
