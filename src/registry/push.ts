import type { Digest } from '../digest.ts';
import type { Image } from '../image/image.ts';
import { OCI_MEDIA_TYPES, planImageManifest, type ImageManifest } from '../image/sinks/oci-archive.ts';
import { planOciIndexLayout } from '../image/sinks/oci-index-archive.ts';
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
  /** Every manifest pushed (each image's of an index, in the order of the images given, then the index): what signatures and attestations attach to. */
  manifests: PushedManifest[];
  /** What happened to each blob (config and distinct layers), for status and tests. */
  blobs: Array<{ digest: Digest; size: number; action: 'existed' | 'mounted' | 'uploaded' }>;
}

/** One manifest a push put up, as a referrer's `subject` names it. */
export interface PushedManifest {
  digest: Digest;
  size: number;
  mediaType: string;
}

/** A small image built in memory (a cosign signature or attestation image): its manifest and the blobs it names. */
export interface InMemoryImage {
  manifest: Buffer;
  manifestDigest: Digest;
  mediaType: string;
  blobs: ReadonlyArray<{ digest: Digest; bytes: Buffer }>;
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
  const target = await openPushTarget(store, refText, opts);
  const planned = await planImageManifest(image, { compression: 'gzip', store, layerIndex: opts.layerIndex });
  const blobs = await pushImageBlobs(target, planned, store);
  const manifestDigest = await putManifest(target, target.tag, planned.manifest, OCI_MEDIA_TYPES.manifest);
  return { manifestDigest, blobs, manifests: [{ digest: manifestDigest, size: planned.manifest.size, mediaType: OCI_MEDIA_TYPES.manifest }] };
}

/**
 * Push several images (a multi-platform build's) as one OCI image index under `ref`'s tag:
 * each image as pushImage pushes it, its manifest by digest, then the index naming them by
 * platform (the bytes the oci-archive sink writes for gzip'd layers). An OCI index rather than
 * a Docker manifest list: the manifests it names are OCI manifests. Returns the index digest.
 */
export async function pushIndex(store: BlobStore, images: Image[], refText: string, opts: PushOptions): Promise<PushResult> {
  const target = await openPushTarget(store, refText, opts);
  const layout = await planOciIndexLayout(images, { refName: `${target.repository}:${target.tag}`, compression: 'gzip', store, layerIndex: opts.layerIndex });
  const blobs: PushResult['blobs'] = [];
  const manifests: PushedManifest[] = [];
  for (const planned of layout.images) {
    for (const blob of await pushImageBlobs(target, planned, store)) if (!blobs.some((b) => b.digest === blob.digest)) blobs.push(blob);
    const digest = await putManifest(target, planned.manifest.digest, planned.manifest, OCI_MEDIA_TYPES.manifest);
    manifests.push({ digest, size: planned.manifest.size, mediaType: OCI_MEDIA_TYPES.manifest });
  }
  const manifestDigest = await putManifest(target, target.tag, layout.index, OCI_MEDIA_TYPES.index);
  manifests.push({ digest: manifestDigest, size: layout.index.size, mediaType: OCI_MEDIA_TYPES.index });
  return { manifestDigest, blobs, manifests };
}

/**
 * Push an in-memory image to the ref's repository under `reference` (a tag, or its digest):
 * its blobs (skipped when there), then its manifest. Returns the manifest digest.
 */
export async function pushInMemoryImage(target: PushTarget, image: InMemoryImage, reference: string): Promise<Digest> {
  for (const blob of image.blobs) {
    const open = async (start: number, end: number) => Readable.from([blob.bytes.subarray(start, end + 1)]);
    await pushBlob(target.client, target.index, target.repository, { digest: blob.digest, size: blob.bytes.length, open }, target.chunkSize);
    await target.index.addBlobRepo(target.host, blob.digest, target.repository);
  }
  return putManifest(target, reference, { digest: image.manifestDigest, json: image.manifest.toString('utf8') }, image.mediaType);
}

/** Where a push goes: the registry (pinged), the repository and tag, and how blobs go up. */
export interface PushTarget {
  client: RegistryClient;
  host: string;
  repository: string;
  tag: string;
  index: RegistryIndex;
  chunkSize: number;
}

export async function openPushTarget(store: BlobStore, refText: string, opts: PushOptions): Promise<PushTarget> {
  const ref = parsePushReference(refText, opts.registries);
  const client = RegistryClient.forReference(ref, opts.registries, opts);
  await client.ping();
  return { client, host: ref.host, repository: ref.repository, tag: ref.tag ?? 'latest', index: opts.index ?? registryIndexOf(store), chunkSize: opts.chunkSize ?? DEFAULT_CHUNK_SIZE };
}
/** The image's blobs (distinct layers, then its config), each skipped, mounted or uploaded. */
async function pushImageBlobs(target: PushTarget, planned: ImageManifest, store: BlobStore): Promise<PushResult['blobs']> {
  const blobs: PushResult['blobs'] = [];
  const seen = new Set<Digest>();
  for (const blob of planned.blobs) {
    if (blob.digest === planned.manifest.digest || seen.has(blob.digest)) continue;
    seen.add(blob.digest);
    const { bytes } = blob;
    const open = bytes ? async (start: number, end: number) => Readable.from([bytes.subarray(start, end + 1)]) : (start: number, end: number) => store.open(blob.digest, { start, end });
    const action = await pushBlob(target.client, target.index, target.repository, { digest: blob.digest, size: blob.size, open }, target.chunkSize);
    blobs.push({ digest: blob.digest, size: blob.size, action });
    await target.index.addBlobRepo(target.host, blob.digest, target.repository);
  }
  return blobs;
}

/** A manifest (or index) PUT under `reference`, checked to be stored under its own digest. */
async function putManifest(target: PushTarget, reference: string, manifest: { digest: Digest; json: string }, mediaType: string): Promise<Digest> {
  const digest = await target.client.putManifest(target.repository, reference, Buffer.from(manifest.json, 'utf8'), mediaType);
  if (digest !== manifest.digest) throw new RegistryError(`manifest digest mismatch after push: ${digest}`, 'invalid');
  return digest;
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
