import type { Readable } from 'node:stream';
import type { Digest } from '../../digest.ts';
import type { BlobStore } from '../../store/blob-store.ts';
import { encodeHeader, padding, TarStreamWriter, type TarWriteHeader } from '../tar-writer.ts';

/** Where a planned entry's bytes come from: held (small JSON), or a range of a stored blob. */
export type PlannedData = { bytes: Buffer } | { blob: Digest; offset: number };

/** One entry of a tar decided in full before any byte is written. */
export interface PlannedEntry {
  header: TarWriteHeader;
  /** Exactly `header.size` bytes; absent for entries without data. */
  data?: PlannedData;
}

/** The output of a sink: the stream, and its exact length when known before writing. */
export interface SinkOutput {
  stream: Readable;
  /** Bytes the stream will give (for `Content-Length`); undefined when compressed on the fly. */
  size?: number;
  mediaType: string;
}

const END_OF_ARCHIVE = 1024;

/** The exact size of the tar `writePlannedTar` writes for these entries. */
export function plannedTarSize(entries: Iterable<PlannedEntry>): number {
  let size = END_OF_ARCHIVE;
  for (const { header } of entries) size += encodeHeader(header).length + header.size + padding(header.size);
  return size;
}

/**
 * Writes the planned entries in order, reading blob data by range from the store as it goes
 * (one entry open at a time, never a whole layer in memory). A failure destroys the stream.
 */
export function writePlannedTar(entries: readonly PlannedEntry[], store: BlobStore): Readable {
  const writer = new TarStreamWriter();
  (async () => {
    for (const { header, data } of entries) {
      if (!data || header.size === 0) {
        await writer.add(header);
      } else if ('bytes' in data) {
        await writer.add(header, data.bytes);
      } else {
        const range = { start: data.offset, end: data.offset + header.size - 1 };
        await writer.addStream(header, await store.open(data.blob, range));
      }
    }
    await writer.finish();
  })().catch((err: unknown) => writer.fail(err));
  return writer.stream;
}

/** A tar as planned: the stream and its exact size. */
export function plannedTar(entries: readonly PlannedEntry[], store: BlobStore, mediaType = 'application/x-tar'): SinkOutput {
  return { stream: writePlannedTar(entries, store), size: plannedTarSize(entries), mediaType };
}

/** RFC 3339 → seconds since the epoch (what tar headers carry). */
export function epochOf(created: string): number {
  const ms = Date.parse(created);
  if (Number.isNaN(ms)) throw new Error(`'${created}' is not a valid date`);
  return Math.floor(ms / 1000);
}
