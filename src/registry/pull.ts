import { Readable } from 'node:stream';
import type { Digest } from '../digest.ts';
import { detectCompression } from '../image/compression.ts';
import { LayerInputError } from '../image/layer-entry.ts';
import { storeLegacyChain } from '../image/legacy-layer.ts';
import type { StoredImage } from '../image/image.ts';
import { DEFAULT_MAX_LAYERS } from '../image/sources/archive/import-archive.ts';
import { checkedLayerTarsum } from '../image/tarsum-of-tar.ts';
import { storeUncompressed } from '../image/uncompressed-blob.ts';
import { parseImageConfig, type ParsedImageConfig } from '../image/config-parse.ts';
import { statedPlatform, missingPlatformMessage, platformText, statesOtherPlatform, wantedText, type Platform, type WantedPlatform } from '../image/platform.ts';
import type { BlobStore } from '../store/blob-store.ts';
import { RegistryClient } from './client.ts';
import type { Descriptor, FetchedManifest, ImageManifest } from './manifest.ts';
import type { ClientOptions } from './registry-transport.ts';
import { selectPlatform } from './select-platform.ts';
import { foreignName } from './foreign-text.ts';
import { formatReference, manifestReference, parseReference, RegistryError, type ImageReference, type Registries } from './registries.ts';
import { registryIndexOf, type RegistryIndex } from './registry-index.ts';

export interface PullOptions extends ClientOptions {
  /**
   * The platform pulled, os linux: an index or manifest list is resolved to it, and an image
   * pulled without one must not state another in its config; default amd64.
   */
  architecture?: string;
  /** The variant asked for (`v8`); absent: the architecture's default one first, then any. */
  variant?: string;
  registries: Registries;
  /** More layers than this fail before any layer is fetched; default 125. */
  maxLayers?: number;
  /** Default: `registryIndexOf(store)`. */
  index?: RegistryIndex;
}

export interface PullResult extends StoredImage {
  /** The reference pulled, as `host/repository:tag` (none for a digest reference). */
  repoTags: string[];
  /** The image manifest's digest (after resolving an index). */
  manifestDigest: Digest;
  /** true when the result came from the cache of earlier pulls. */
  cached: boolean;
}

/**
 * Pull `ref` (`host:port/repo[:tag|@sha256:…]`) from an allowed registry into the store, as an
 * archive import would: the config stored as is (its digest is the image id); each layer
 * fetched once, checked against the manifest's digest and size, decompressed (gzip, zstd, xz,
 * bzip2 or plain, by its magic bytes), checked against its diff_id as the store writes it, and stored
 * uncompressed under the diff_id; the legacy chain as nixpkgs dockerTools'. A layer whose diff_id the
 * store already holds is not fetched. The result is cached under the image manifest digest:
 * pulling the same digest again costs the manifest GET of the tag (nothing for an `@sha256:`
 * ref of an image manifest). Any failure is a RegistryError.
 */
export async function pullImage(store: BlobStore, refText: string, opts: PullOptions): Promise<PullResult> {
  const ref = parseReference(refText);
  const client = RegistryClient.forReference(ref, opts.registries, opts);
  const index = opts.index ?? registryIndexOf(store);
  const want: WantedPlatform = { architecture: opts.architecture ?? 'amd64', ...(opts.variant ? { variant: opts.variant } : {}) };
  const what = formatReference(ref);

  // An image reached through an index is the platform its entry says; one reached directly
  // (a tag or digest of an image manifest) is the platform its config says.
  if (ref.digest) {
    const hit = await cachedPull(store, index, ref.digest);
    if (hit) return { ...(await withPlatformChecked(store, hit, want, what)), repoTags: repoTagsOf(ref), manifestDigest: ref.digest, cached: true };
  }
  let manifest = await client.getManifest(ref.repository, manifestReference(ref));
  let checkConfig = true;
  if (manifest.kind === 'index') {
    const chosen: Descriptor = selectPlatform(manifest.index!, want, what);
    const hit = await cachedPull(store, index, chosen.digest);
    if (hit) return { ...hit, repoTags: repoTagsOf(ref), manifestDigest: chosen.digest, cached: true };
    manifest = await client.getManifest(ref.repository, chosen.digest);
    if (manifest.kind !== 'image') throw new RegistryError(`${what}: the ${wantedText(want)} entry of the index is itself an index`, 'invalid');
    checkConfig = false;
  } else {
    const hit = await cachedPull(store, index, manifest.digest);
    if (hit) return { ...(await withPlatformChecked(store, hit, want, what)), repoTags: repoTagsOf(ref), manifestDigest: manifest.digest, cached: true };
  }
  const image = await fetchImage(store, client, ref, manifest, { maxLayers: opts.maxLayers ?? DEFAULT_MAX_LAYERS, index, ...(checkConfig ? { want } : {}) });
  await index.setPulled(manifest.digest, image);
  return { ...image, manifestDigest: manifest.digest, cached: false };
}

function repoTagsOf(ref: ImageReference): string[] {
  return ref.tag ? [`${ref.host}/${ref.repository}:${ref.tag}`] : [];
}

/** A RegistryError (kind `platform`) when an image's config states another platform than `want`. */
function checkPlatform(config: Platform, want: WantedPlatform, what: string): void {
  if (!statesOtherPlatform(config, want)) return;
  const has = platformText(config, (part) => foreignName(part, 20));
  throw new RegistryError(missingPlatformMessage(what, want, has), 'platform');
}

/** A cached image pulled without an index, its stored config checked as a fresh pull's would be. */
async function withPlatformChecked(store: BlobStore, image: StoredImage, want: WantedPlatform, what: string): Promise<StoredImage> {
  const chunks: Buffer[] = [];
  for await (const chunk of (await store.open(image.imageId)) as AsyncIterable<Buffer>) chunks.push(chunk);
  checkPlatform(statedPlatform(JSON.parse(Buffer.concat(chunks).toString('utf8'))), want, what);
  return image;
}

/** A cached pull, if everything it names is still in the store. */
async function cachedPull(store: BlobStore, index: RegistryIndex, manifestDigest: Digest): Promise<StoredImage | null> {
  const image = await index.getPulled(manifestDigest);
  if (!image) return null;
  const needed = [image.imageId, ...image.layers.flatMap((l) => [l.diffId, l.v1Json])];
  for (const digest of new Set(needed)) if (!(await store.stat(digest))) return null;
  return image;
}

function parseConfig(bytes: Buffer, what: string): ParsedImageConfig {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new RegistryError(`${what}: the image config is not JSON`, 'invalid');
  }
  try {
    return parseImageConfig(value, `${what}: the image config`);
  } catch (err) {
    if (err instanceof LayerInputError) throw new RegistryError(err.message, 'invalid', { cause: err });
    throw err;
  }
}

async function fetchImage(
  store: BlobStore,
  client: RegistryClient,
  ref: ImageReference,
  manifest: FetchedManifest,
  /** `want`: the platform the config must not contradict (absent: an index entry said it). */
  opts: { maxLayers: number; index: RegistryIndex; want?: WantedPlatform },
): Promise<StoredImage & { repoTags: string[] }> {
  const what = `${ref.host}/${ref.repository}@${manifest.digest}`;
  const m = manifest.image as ImageManifest;
  if (m.layers.length > opts.maxLayers) throw new RegistryError(`${what} has ${m.layers.length} layers, more than the limit of ${opts.maxLayers}`, 'invalid');
  const configBytes = await client.getBlobBytes(ref.repository, m.config.digest, m.config.size);
  const config = parseConfig(configBytes, what);
  // Before any layer is fetched.
  if (opts.want) checkPlatform(config, opts.want, formatReference(ref));
  if (config.diffIds.length !== m.layers.length) {
    throw new RegistryError(`${what}: the manifest lists ${m.layers.length} layers but the config ${config.diffIds.length} diff_ids`, 'invalid');
  }

  const sizes = new Map<Digest, number>();
  for (const [i, layer] of m.layers.entries()) {
    const diffId = config.diffIds[i] as Digest;
    const layerWhat = `${what}: layer ${i + 1} of ${m.layers.length} (${layer.digest})`;
    if (layer.urls?.length || layer.mediaType.includes('foreign') || layer.mediaType.includes('nondistributable')) {
      throw new RegistryError(`${layerWhat} is a foreign layer (${foreignName(layer.mediaType)}), which cannot be pulled`, 'invalid');
    }
    if (!sizes.has(diffId)) {
      const have = await store.stat(diffId);
      sizes.set(diffId, have ? have.size : await fetchLayer(store, client, ref.repository, layer, diffId, layerWhat));
    }
    await opts.index.addBlobRepo(ref.host, layer.digest, ref.repository);
  }

  const tarsums = new Map<Digest, string>();
  for (const [i, diffId] of config.diffIds.entries()) {
    if (!tarsums.has(diffId)) tarsums.set(diffId, await layerTarsum(store, diffId, `${what}: layer ${i + 1}`));
  }
  const layers = await storeLegacyChain(
    store,
    { architecture: config.architecture, os: config.os, created: config.created, config: config.config },
    config.diffIds.map((diffId) => ({ diffId, size: sizes.get(diffId) as number, tarsum: tarsums.get(diffId) as string })),
  );
  await store.put(Readable.from([configBytes]), { expectedDigest: m.config.digest });
  await opts.index.addBlobRepo(ref.host, m.config.digest, ref.repository);
  return { imageId: m.config.digest, layers, repoTags: repoTagsOf(ref) };
}

/** The first `n` bytes of a stream, and a stream of all of it. */
async function peek(source: Readable, n: number): Promise<{ head: Buffer; stream: Readable }> {
  const it = source[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const chunks: Buffer[] = [];
  let got = 0;
  let done = false;
  while (got < n) {
    const next = await it.next();
    if (next.done) {
      done = true;
      break;
    }
    chunks.push(next.value);
    got += next.value.length;
  }
  const head = Buffer.concat(chunks);
  async function* all(): AsyncGenerator<Buffer> {
    if (head.length) yield head;
    if (done) return;
    for (;;) {
      const next = await it.next();
      if (next.done) return;
      yield next.value;
    }
  }
  const stream = Readable.from(all(), { objectMode: false });
  stream.once('close', () => {
    if (!source.destroyed) source.destroy();
  });
  return { head: head.subarray(0, n), stream };
}

/** One layer blob: fetched (verified by the client), decompressed, stored under its diff_id. */
async function fetchLayer(store: BlobStore, client: RegistryClient, repository: string, layer: Descriptor, diffId: Digest, what: string): Promise<number> {
  const blob = await client.getBlob(repository, layer.digest, layer.size);
  try {
    const { head, stream } = await peek(blob, 8);
    const refuse = (message: string, cause: Error) => new RegistryError(message, 'invalid', { cause });
    const put = await storeUncompressed(store, stream, detectCompression(head), { what, compressedSize: layer.size, expectedDigest: diffId, refuse });
    return put.size;
  } catch (err) {
    blob.destroy();
    if (err instanceof RegistryError) throw err;
    if ((err as Error)?.cause instanceof RegistryError) throw (err as Error).cause;
    throw err;
  }
}

async function layerTarsum(store: BlobStore, diffId: Digest, what: string): Promise<string> {
  try {
    return await checkedLayerTarsum(store, diffId, what);
  } catch (err) {
    if (err instanceof LayerInputError) throw new RegistryError(err.message, 'invalid', { cause: err });
    throw err;
  }
}
