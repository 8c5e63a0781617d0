import type { Digest } from '../digest.ts';
import type { BlobStore } from '../store/blob-store.ts';
import { LayerInputError, normalizeLayerPath } from './layer-entry.ts';
import { BlobRangeReader } from './blob-range-reader.ts';
import { readStoredData, storedDataOf } from './stored-data.ts';
import { indexTar, TarFormatError, type IndexedTarEntry } from './tar-index.ts';
import { TarSum } from './tarsum.ts';

/**
 * The legacy `tarsum.v1` of an uncompressed tar in the store: one pass of the tar index over
 * the blob, the files' data read beside it in order. Nothing is held in memory but one entry's
 * header. `onEntry` sees every header first (to validate paths, count entries, …) and may
 * throw to stop. Throws TarFormatError when the blob is not a tar.
 */
export async function tarsumOfStoredTar(store: BlobStore, digest: Digest, onEntry?: (entry: IndexedTarEntry) => void): Promise<string> {
  const sum = new TarSum();
  // A second sequential read beside the index's: one open for all the entries' data.
  const reader = new BlobRangeReader(store);
  try {
    for await (const entry of indexTar(await store.open(digest))) {
      onEntry?.(entry);
      sum.beginEntry(entry);
      for await (const chunk of readStoredData(reader, storedDataOf(digest, entry), entry.size)) sum.update(chunk);
    }
  } finally {
    reader.close();
  }
  return sum.digest();
}

/**
 * The tarsum of a stored layer from outside (an archive, a registry), checking on the way that
 * it is a tar whose paths and hard links stay inside it. Throws LayerInputError saying what is
 * wrong, for the caller to wrap in its own error.
 */
export async function checkedLayerTarsum(store: BlobStore, diffId: Digest, what: string): Promise<string> {
  try {
    return await tarsumOfStoredTar(store, diffId, (entry) => {
      normalizeLayerPath(entry.name, `${what}: entry`);
      if (entry.type === 'link') normalizeLayerPath(entry.linkname, `${what}: hard link target`);
    });
  } catch (err) {
    if (err instanceof TarFormatError) throw new LayerInputError(`${what} is not a valid tar: ${err.message}`, { cause: err });
    throw err;
  }
}
