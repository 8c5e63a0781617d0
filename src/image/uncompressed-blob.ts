import type { Readable } from 'node:stream';
import type { Digest } from '../digest.ts';
import { BlobTooLargeError, DigestMismatchError, type BlobStore, type PutResult } from '../store/blob-store.ts';
import { detectCompression, readHead, unpackLimit, UNPACK_BUDGET_TEXT, type CompressionKind } from './compression.ts';
import { LayerInputError } from './layer-entry.ts';
import { decompress, isDecompressionError } from './sources/archive/decompress.ts';

export interface UncompressedCopyOptions {
  /** What the bytes are, for the error: `blob sha256:…`, `the archive`, `layer 2 of 3 (…)`. */
  what: string;
  /** Their compressed size: the decompression budget is a multiple of it (unpackLimit). */
  compressedSize: number;
  /** The diff_id the uncompressed bytes must hash to, if known. */
  expectedDigest?: Digest;
  /** The caller's error for a refused copy (its message says why, naming `what`). */
  refuse: (message: string, cause: Error) => Error;
}

/**
 * `source` (compressed as `kind` says, told by its magic bytes, or not at all) stored
 * uncompressed: the one way a blob, an image archive or a layer that may come compressed
 * (gzip, zstd, xz, bzip2) becomes a plain blob. Decompressed under the one decompression
 * budget; over it, on corrupt data, or when the result is not `expectedDigest`, the put is
 * discarded (nothing half-written) and `refuse` makes the error.
 */
export async function storeUncompressed(store: BlobStore, source: Readable, kind: CompressionKind, opts: UncompressedCopyOptions): Promise<PutResult> {
  const { what, expectedDigest, refuse } = opts;
  try {
    return await store.put(decompress(kind, source), { expectedDigest, maxBytes: kind === 'none' ? undefined : unpackLimit(opts.compressedSize) });
  } catch (err) {
    source.destroy();
    if (err instanceof BlobTooLargeError) throw refuse(`${what} decompresses to more than ${err.limit} bytes (an archive bomb?): ${UNPACK_BUDGET_TEXT}`, err);
    if (err instanceof DigestMismatchError) {
      throw refuse(`${what} does not match its diff_id ${err.expected}: ${kind === 'none' ? 'it' : 'uncompressed, it'} hashes to ${err.actual}`, err);
    }
    if (isDecompressionError(err)) throw refuse(`${what} is not valid ${kind} data: ${err.message}`, err);
    throw err;
  }
}

/**
 * The digest of the uncompressed form of a stored blob: the blob itself when it is not
 * compressed, else a decompressed copy put in the store (content-addressed, so shared).
 * LayerInputError when the blob is missing or the copy is refused (storeUncompressed).
 */
export async function uncompressedBlob(store: BlobStore, digest: Digest): Promise<Digest> {
  const info = await store.stat(digest);
  if (!info) throw new LayerInputError(`blob ${digest} not found`);
  if (info.size === 0) return digest;
  const kind = detectCompression(await readHead(await store.open(digest, { start: 0, end: 7 }), 8));
  if (kind === 'none') return digest;
  const put = await storeUncompressed(store, await store.open(digest), kind, {
    what: `blob ${digest}`,
    compressedSize: info.size,
    refuse: (message, cause) => new LayerInputError(message, { cause }),
  });
  return put.digest;
}
