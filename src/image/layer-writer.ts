import type { Readable } from 'node:stream';
import type { BlobStore } from '../store/blob-store.ts';
import { BlobRangeReader } from './blob-range-reader.ts';
import type { LayerEntry } from './layer-entry.ts';
import { readStoredData } from './stored-data.ts';
import { TarStreamWriter, type TarWriteHeader } from './tar-writer.ts';
import { TarSum } from './tarsum.ts';

export interface LayerTar {
  stream: Readable;
  /** Resolves with the legacy tarsum once the stream has been read to its end. */
  tarsum: Promise<string>;
}

/**
 * Writes entries in the order given as a tar, streaming file data from the store. With
 * `mtime` set every entry gets it (a deterministic layer: entries already sorted, numeric
 * owners with empty names, directories ending in `/`); without, each keeps its own.
 */
export function writeLayerTar(entries: Iterable<LayerEntry> | AsyncIterable<LayerEntry>, store: BlobStore, mtime?: number): LayerTar {
  const writer = new TarStreamWriter();
  const tarsum = new TarSum();
  const reader = new BlobRangeReader(store);

  const done = (async () => {
    for await (const entry of entries) {
      const name = entry.type === 'directory' ? `${entry.path}/` : entry.path;
      const header: TarWriteHeader = {
        name,
        type: entry.type,
        mode: entry.mode,
        uid: entry.uid,
        gid: entry.gid,
        size: entry.size,
        mtime: mtime ?? entry.mtime ?? 0,
        linkname: entry.linkname,
        devmajor: entry.devmajor,
        devminor: entry.devminor,
        xattrs: entry.xattrs,
      };
      tarsum.beginEntry({ ...entry, name });
      if (entry.size === 0 || !entry.data) {
        await writer.add(header);
      } else if ('inline' in entry.data) {
        tarsum.update(entry.data.inline);
        await writer.add(header, entry.data.inline);
      } else {
        // A sparse file is written as the regular file it stands for (README: sparse files).
        await writer.addStream(header, readStoredData(reader, entry.data, entry.size), (chunk) => tarsum.update(chunk));
      }
    }
    await writer.finish();
    return tarsum.digest();
  })().finally(() => reader.close());
  done.catch((err: unknown) => writer.fail(err));
  return { stream: writer.stream, tarsum: done };
}
