import type { Readable } from 'node:stream';
import type { BlobStore } from '../../store/blob-store.ts';
import { storedDataPieces, type StoredData } from '../stored-data.ts';
import { printable } from '../printable.ts';
import { encodeHeader, padding, type TarWriteHeader } from '../tar-writer.ts';
import { compactPlan, openPlan, planSize, type BytePlan, type Segment } from './byte-plan.ts';

/** Where a planned entry's bytes come from: held (small JSON), or a stored blob (maybe a sparse file's segments). */
export type PlannedData = { bytes: Buffer } | StoredData;

/** One entry of a tar decided in full before any byte is written. */
export interface PlannedEntry {
  header: TarWriteHeader;
  /** Exactly `header.size` bytes; absent for entries without data. */
  data?: PlannedData;
}

/**
 * The output of a sink. `plan` when the bytes are decided up front (exact size, any range
 * readable alone); otherwise only a stream (compressed on the fly). `stream` is made on first
 * access, so asking only for the plan opens nothing.
 */
export interface SinkOutput {
  readonly stream: Readable;
  /** Bytes the stream will give (for `Content-Length`); undefined when compressed on the fly. */
  readonly size?: number;
  readonly mediaType: string;
  readonly plan?: BytePlan;
}

const END_OF_ARCHIVE = Buffer.alloc(1024);
const ZEROS = Buffer.alloc(512);

/** The tar of these entries as a byte plan: each header, its data, its padding, the end. */
export function tarBytePlan(entries: Iterable<PlannedEntry>): Segment[] {
  const plan: Segment[] = [];
  for (const { header, data } of entries) {
    plan.push({ bytes: encodeHeader(header) });
    if (header.size === 0) continue;
    if (!data) throw new Error(`tar entry ${printable(header.name)}: ${header.size} bytes planned but no data`);
    if ('bytes' in data) {
      if (data.bytes.length !== header.size) throw new Error(`tar entry ${printable(header.name)}: ${data.bytes.length} bytes for a size of ${header.size}`);
      plan.push({ bytes: data.bytes });
    } else {
      // A sparse file's holes become runs of zeros: a regular file in the tar.
      for (const piece of storedDataPieces(data, header.size)) plan.push(piece);
    }
    const pad = padding(header.size);
    if (pad > 0) plan.push({ bytes: ZEROS.subarray(0, pad) });
  }
  plan.push({ bytes: END_OF_ARCHIVE });
  return compactPlan(plan);
}

/**
 * Writes the planned entries in order, reading blob data by range from the store as it goes
 * (one entry open at a time, never a whole layer in memory). A failure destroys the stream.
 */
export function writePlannedTar(entries: readonly PlannedEntry[], store: BlobStore): Readable {
  return openPlan(tarBytePlan(entries), store);
}

/** A sink output over a byte plan: exact size, stream opened on first access. */
export function planOutput(plan: BytePlan, store: BlobStore, mediaType: string): SinkOutput {
  let stream: Readable | undefined;
  return {
    mediaType,
    plan,
    size: planSize(plan),
    get stream() {
      return (stream ??= openPlan(plan, store));
    },
  };
}

/** A tar as planned: the stream and its exact size. */
export function plannedTar(entries: readonly PlannedEntry[], store: BlobStore, mediaType = 'application/x-tar'): SinkOutput {
  return planOutput(tarBytePlan(entries), store, mediaType);
}

/** RFC 3339 → seconds since the epoch (what tar headers carry). */
export function epochOf(created: string): number {
  const ms = Date.parse(created);
  if (Number.isNaN(ms)) throw new Error(`'${created}' is not a valid date`);
  return Math.floor(ms / 1000);
}
