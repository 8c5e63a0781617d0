import type { Digest } from '../digest.ts';
import type { BlobStore } from '../store/blob-store.ts';
import { indexTar, type IndexedTarEntry } from './tar-index.ts';
import { TarSum } from './tarsum.ts';

/**
 * The legacy `tarsum.v1` of an uncompressed tar in the store: one pass of the tar index over
 * the blob, each regular file's data read by range. Nothing is held in memory but one entry's
 * header. `onEntry` sees every header first (to validate paths, count entries, …) and may
 * throw to stop. Throws TarFormatError when the blob is not a tar.
 */
export async function tarsumOfStoredTar(
  store: BlobStore,
  digest: Digest,
  onEntry?: (entry: IndexedTarEntry) => void,
): Promise<string> {
  const sum = new TarSum();
  for await (const entry of indexTar(await store.open(digest))) {
    onEntry?.(entry);
    sum.beginEntry(entry);
    if (entry.size > 0) {
      const data = await store.open(digest, { start: entry.dataOffset, end: entry.dataOffset + entry.size - 1 });
      for await (const chunk of data as AsyncIterable<Buffer>) sum.update(chunk);
    }
  }
  return sum.digest();
}
