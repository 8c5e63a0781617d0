import { createHash } from 'node:crypto';
import { Readable, Transform } from 'node:stream';
import { digestFromHash, type Digest } from '../../../digest.ts';
import type { BlobStore } from '../../../store/blob-store.ts';
import { detectCompression, readHead } from '../../compression.ts';
import { LayerInputError } from '../../layer-entry.ts';
import { storeLegacyChain } from '../../legacy-layer.ts';
import { checkedLayerTarsum } from '../../tarsum-of-tar.ts';
import { parseImageConfig, type ParsedImageConfig } from '../../config-parse.ts';
import type { StoredImage } from '../../image.ts';
import { pipeThrough } from '../../../streams.ts';
import { storeUncompressed } from '../../uncompressed-blob.ts';
import { ArchiveReader } from './archive-reader.ts';
import { archiveBudgets, type ArchiveBudgets } from './budgets.ts';
import { clipText } from './error-text.ts';
import { ArchiveImportError } from './errors.ts';
import { planDockerArchive } from './docker-archive-layout.ts';
import { checkLayerCount, type ImagePlan } from './image-plan.ts';
import { planOciLayout } from './oci-layout.ts';
import { selectionText, type Selection } from './select-image.ts';
import { missingPlatformMessage, platformText, statesOtherPlatform } from '../../platform.ts';

export { ArchiveImportError };

/** Docker refuses images deeper than this. */
export const DEFAULT_MAX_LAYERS = 125;

export interface ImportOptions {
  /** `fromImageName`: picks an image of a multi-image archive (with `tag`, or alone when it has one tag). */
  name?: string;
  /** `fromImageTag`. */
  tag?: string;
  /**
   * The platform imported, os linux: several images (an index's entries, a multi-image
   * archive's) are told apart by it, and the one taken must not state another; default amd64.
   */
  architecture?: string;
  /** The variant asked for (`v8`); absent: the architecture's default one first, then any. */
  variant?: string;
  /** More layers than this fail before any layer is read; default 125. */
  maxLayers?: number;
  /** What the archive may cost (members, JSON size, images, names, error text); defaults: DEFAULT_ARCHIVE_BUDGETS. */
  budgets?: Partial<ArchiveBudgets>;
}

/**
 * Import an image from an uploaded archive blob, in any form real tools write: `docker save`
 * (Docker ≤ 24, and ≥ 25 with its OCI layout inside), podman/skopeo/buildah's docker-archive and
 * oci-archive, nixpkgs dockerTools' layout; the archive and each of its layers plain or compressed
 * with gzip, zstd, xz or bzip2 (told by their magic bytes, whatever the manifest's media type
 * says). The archive is read in place by range; every layer is decompressed, verified against
 * its diff_id and stored uncompressed; the config is stored as is (its digest is the image
 * id); the legacy chain is nixpkgs dockerTools'. Gives the image and the names the
 * archive records for it (`name:tag`). Failures the archive or the choice of image cause are ArchiveImportError.
 */
export async function importArchive(
  store: BlobStore,
  digest: Digest,
  opts: ImportOptions,
  /** Told the layer bytes read so far, of the total of all layer members. */
  onProgress?: (bytesDone: number, bytesTotal: number) => void,
): Promise<StoredImage & { repoTags: string[] }> {
  return withShortErrors(opts, () => importPlanned(store, digest, opts, onProgress));
}

async function importPlanned(store: BlobStore, digest: Digest, opts: ImportOptions, onProgress?: (bytesDone: number, bytesTotal: number) => void): Promise<StoredImage & { repoTags: string[] }> {
  const maxLayers = opts.maxLayers ?? DEFAULT_MAX_LAYERS;
  const { reader, plan, selection } = await planImport(store, digest, opts);

  const { config, configBlob } = await readConfig(reader, plan);
  // Before any layer is read: what an index entry states of the image, else what its config does.
  const stated = plan.platform ?? config;
  if (statesOtherPlatform(stated, selection)) throw new ArchiveImportError(missingPlatformMessage('the archive', selection, platformText(stated), selectionText(selection)));
  checkLayerCount(config.diffIds.length, maxLayers);
  if (config.diffIds.length !== plan.layers.length) {
    throw new ArchiveImportError(`the image's manifest lists ${plural(plan.layers.length, 'layer')} but its config ${plural(config.diffIds.length, 'diff_id')}`);
  }

  // Every layer member is verified (a member shared by several positions, once); then each
  // distinct layer is read back once from the store for its tarsum.
  const n = plan.layers.length;
  const verified = new Map<string, number>();
  const sizes = new Map<Digest, number>();
  const members = plan.layers.map((ref, i) => reader.file(ref.path, `layer ${i + 1} of ${n} (${ref.path})`));
  const bytesTotal = [...new Map(members.map((m) => [m.path, m.size])).values()].reduce((sum, size) => sum + size, 0);
  let bytesDone = 0;
  const onBytes = (bytes: number) => onProgress?.((bytesDone += bytes), bytesTotal);
  for (const [i, ref] of plan.layers.entries()) {
    const diffId = config.diffIds[i] as Digest;
    const what = `layer ${i + 1} of ${n} (${ref.path})`;
    const member = members[i] as (typeof members)[number];
    const key = `${member.path}\n${diffId}`;
    let size = verified.get(key);
    if (size === undefined) {
      size = await importLayer(store, reader, member, ref.digest, diffId, what, onBytes);
      verified.set(key, size);
    }
    sizes.set(diffId, size);
  }
  const tarsums = new Map<Digest, string>();
  for (const [i, diffId] of config.diffIds.entries()) {
    if (!tarsums.has(diffId)) tarsums.set(diffId, await layerTarsum(store, diffId, `layer ${i + 1} of ${n} (${plan.layers[i]?.path})`));
  }

  const layers = await storeLegacyChain(
    store,
    { architecture: config.architecture, os: config.os, created: config.created, config: config.config ?? {} },
    config.diffIds.map((diffId) => ({ diffId, size: sizes.get(diffId) as number, tarsum: tarsums.get(diffId) as string })),
  );
  await store.put(Readable.from([configBlob.bytes]), { expectedDigest: configBlob.digest });
  return { imageId: configBlob.digest, layers, repoTags: plan.repoTags };
}

/**
 * The cheap half of an import: which image the options pick and how many layers it has,
 * without reading any layer (a gzip'd archive is still decompressed into the store, which the
 * import then reuses). Throws the same ArchiveImportError the import would for a bad pick or
 * too many layers; lets a caller refuse a spec before queueing it.
 */
export async function inspectArchive(store: BlobStore, digest: Digest, opts: ImportOptions): Promise<{ repoTags: string[]; layers: number }> {
  return withShortErrors(opts, async () => {
    const { plan } = await planImport(store, digest, opts);
    return { repoTags: plan.repoTags, layers: plan.layers.length };
  });
}

/**
 * Run `work`, cutting the text of an ArchiveImportError to the error budget: messages quote
 * paths and names from the archive, which may be as long as its JSON.
 */
async function withShortErrors<T>(opts: ImportOptions, work: () => Promise<T>): Promise<T> {
  const { maxErrorChars } = archiveBudgets(opts.budgets);
  try {
    return await work();
  } catch (err) {
    // A new error: the long text would live on in the old one's stack.
    if (err instanceof ArchiveImportError && err.message.length > maxErrorChars) throw new ArchiveImportError(clipText(err.message, maxErrorChars));
    throw err;
  }
}

async function planImport(store: BlobStore, digest: Digest, opts: ImportOptions): Promise<{ reader: ArchiveReader; plan: ImagePlan; selection: Selection }> {
  const selection: Selection = { name: opts.name, tag: opts.tag, architecture: opts.architecture ?? 'amd64', ...(opts.variant ? { variant: opts.variant } : {}) };
  const budgets = archiveBudgets(opts.budgets);
  const limits = { budgets, maxLayers: opts.maxLayers ?? DEFAULT_MAX_LAYERS };
  const reader = await ArchiveReader.open(store, await uncompressedArchive(store, digest), budgets);
  let plan: ImagePlan;
  if (reader.has('manifest.json')) plan = await planDockerArchive(reader, selection, limits);
  else if (reader.has('index.json')) plan = await planOciLayout(reader, selection, limits);
  else throw new ArchiveImportError('not an image archive: it has neither manifest.json (docker-archive) nor index.json (OCI layout)');
  checkLayerCount(plan.layers.length, limits.maxLayers);
  return { reader, plan, selection };
}

/** The image's config, checked against the digest the archive states; only its bytes are kept beside the parsed form. */
async function readConfig(reader: ArchiveReader, plan: ImagePlan): Promise<{ config: ParsedImageConfig; configBlob: { bytes: Buffer; digest: Digest } }> {
  const { path, bytes, digest, value } = await reader.readJson(plan.config.path, 'image config');
  if (plan.config.digest && plan.config.digest !== digest) {
    throw new ArchiveImportError(`image config ${path} does not match its digest ${plan.config.digest}: its content hashes to ${digest}`);
  }
  return { config: parseConfig(value, path), configBlob: { bytes, digest } };
}

function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

/** The archive as an uncompressed tar in the store. */
async function uncompressedArchive(store: BlobStore, digest: Digest): Promise<Digest> {
  const info = await store.stat(digest);
  if (!info) throw new ArchiveImportError(`blob ${digest} not found`);
  if (info.size === 0) throw new ArchiveImportError(`blob ${digest} is empty, not an image archive`);
  const kind = detectCompression(await readHead(await store.open(digest, { start: 0, end: 7 }), 8));
  if (kind === 'none') return digest;
  const put = await storeUncompressed(store, await store.open(digest), kind, { what: 'the archive', compressedSize: info.size, refuse: importError });
  return put.digest;
}

const importError = (message: string, cause: Error) => new ArchiveImportError(message, { cause });

function parseConfig(value: unknown, path: string): ParsedImageConfig {
  try {
    return parseImageConfig(value, `image config ${path}`);
  } catch (err) {
    if (err instanceof LayerInputError) throw new ArchiveImportError(err.message, { cause: err });
    throw err;
  }
}

/**
 * One layer member: decompressed as its magic bytes say, stored uncompressed under its diff_id
 * (the store verifies the hash before the blob becomes visible). Returns the uncompressed size.
 */
async function importLayer(
  store: BlobStore,
  reader: ArchiveReader,
  member: Parameters<ArchiveReader['openData']>[0],
  blobDigest: Digest | undefined,
  diffId: Digest,
  what: string,
  onBytes?: (bytes: number) => void,
): Promise<number> {
  const kind = detectCompression(await reader.head(member, 8));
  const hash = createHash('sha256');
  const raw = pipeThrough(
    await reader.openData(member),
    new Transform({
      transform(chunk: Buffer, _encoding, done) {
        hash.update(chunk);
        onBytes?.(chunk.length);
        done(null, chunk);
      },
    }),
  );
  const { size } = await storeUncompressed(store, raw, kind, { what, compressedSize: member.size, expectedDigest: diffId, refuse: importError });
  const actual = digestFromHash(hash);
  if (blobDigest && actual !== blobDigest) {
    throw new ArchiveImportError(`${what} does not match its digest ${blobDigest}: it hashes to ${actual}`);
  }
  return size;
}

async function layerTarsum(store: BlobStore, diffId: Digest, what: string): Promise<string> {
  try {
    return await checkedLayerTarsum(store, diffId, what);
  } catch (err) {
    if (err instanceof LayerInputError) throw new ArchiveImportError(err.message, { cause: err });
    throw err;
  }
}
