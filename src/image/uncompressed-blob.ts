import type { Digest } from '../digest.ts';
import { BlobTooLargeError, type BlobStore } from '../store/blob-store.ts';
import { detectCompression, readHead, unpackLimit, UNPACK_BUDGET_TEXT } from './compression.ts';
import { LayerInputError } from './layer-entry.ts';
import { decompress, isDecompressionError } from './sources/archive/decompress.ts';

/**
 * The digest of the uncompressed form of a stored blob: the blob itself when it is not
 * compressed, else a decompressed copy put in the store (content-addressed, so shared).
 * gzip, zstd, xz and bzip2 are told apart by their magic bytes and go through the one
 * `decompress()` every other blob takes, under the same decompression budget; over it, or
 * on a corrupt stream, the put is discarded (nothing half-written) and LayerInputError says why.
 */
export async function uncompressedBlob(store: BlobStore, digest: Digest): Promise<Digest> {
  const info = await store.stat(digest);
  if (!info) throw new LayerInputError(`blob ${digest} not found`);
  if (info.size === 0) return digest;
  const kind = detectCompression(await readHead(await store.open(digest, { start: 0, end: 7 }), 8));
  if (kind === 'none') return digest;
  const source = await store.open(digest);
  try {
    const put = await store.put(decompress(kind, source), { maxBytes: unpackLimit(info.size) });
    return put.digest;
  } catch (err) {
    source.destroy();
    if (err instanceof BlobTooLargeError) {
      throw new LayerInputError(`blob ${digest} decompresses to more than ${err.limit} bytes (an archive bomb?): ${UNPACK_BUDGET_TEXT}`, { cause: err });
    }
    if (isDecompressionError(err)) {
      throw new LayerInputError(`blob ${digest} is not valid ${kind} data: ${err.message}`, { cause: err });
    }
    throw err;
  }
}
