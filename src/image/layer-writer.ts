import type { Readable } from 'node:stream';
import type { BlobStore } from '../store/blob-store.ts';
import type { LayerEntry } from './layer-entry.ts';
import { TarPacker, type TarHeaderInput } from './tar-packer.ts';
import { TarSum } from './tarsum.ts';

/** tar-stream writes ids as 6 octal digits; larger ids go in PAX records. */
const USTAR_MAX_ID = 0o777777;

export interface LayerTar {
  stream: Readable;
  /** Resolves with the legacy tarsum once the stream has been read to its end. */
  tarsum: Promise<string>;
}

/**
 * Writes entries, already sorted, as a deterministic layer tar: every mtime is `mtime`, owners
 * are numeric with empty names, directories end in `/`, and PAX records carry whatever ustar
 * cannot (long or non-ASCII names, large ids, xattrs). Data is streamed from the store.
 */
export function writeLayerTar(entries: Iterable<LayerEntry>, store: BlobStore, mtime: number): LayerTar {
  const packer = new TarPacker();
  const tarsum = new TarSum();
  const when = new Date(mtime * 1000);

  const done = (async () => {
    for (const entry of entries) {
      const name = entry.type === 'directory' ? `${entry.path}/` : entry.path;
      const header: TarHeaderInput = {
        name,
        type: entry.type,
        mode: entry.mode,
        uid: Math.min(entry.uid, USTAR_MAX_ID),
        gid: Math.min(entry.gid, USTAR_MAX_ID),
        size: entry.size,
        mtime: when,
        uname: '',
        gname: '',
        devmajor: entry.devmajor,
        devminor: entry.devminor,
      };
      if (entry.linkname) header.linkname = entry.linkname;
      const pax = paxRecords(name, entry);
      if (pax) header.pax = pax;
      tarsum.beginEntry({ ...entry, name });
      if (entry.size === 0 || !entry.data) {
        await packer.add(header);
      } else if ('inline' in entry.data) {
        tarsum.update(entry.data.inline);
        await packer.add(header, entry.data.inline);
      } else {
        const range = { start: entry.data.offset, end: entry.data.offset + entry.size - 1 };
        await packer.addStream(header, await store.open(entry.data.blob, range), (chunk) => tarsum.update(chunk));
      }
    }
    packer.finalize();
    return tarsum.digest();
  })();
  done.catch((err: unknown) => packer.destroy(err));
  return { stream: packer.readable, tarsum: done };
}

function paxRecords(name: string, entry: LayerEntry): Record<string, string> | undefined {
  const records: Record<string, string> = {};
  if (entry.uid > USTAR_MAX_ID) records.uid = String(entry.uid);
  if (entry.gid > USTAR_MAX_ID) records.gid = String(entry.gid);
  for (const key of Object.keys(entry.xattrs).sort()) records[`SCHILY.xattr.${key}`] = entry.xattrs[key] ?? '';
  // Any header with records (even none of its own) makes tar-stream write a PAX header that
  // carries `path` and `linkpath`, which is how non-ASCII names must travel; names too long
  // for ustar get one from tar-stream without asking.
  const needed = Object.keys(records).length > 0 || !isAscii(name) || !isAscii(entry.linkname);
  return needed ? records : undefined;
}

function isAscii(value: string): boolean {
  return /^[\x00-\x7f]*$/.test(value);
}
