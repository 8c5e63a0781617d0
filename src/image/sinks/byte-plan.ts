import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Digest } from '../../digest.ts';
import type { BlobStore, ByteRange } from '../../store/blob-store.ts';
import { BlobRangeReader } from '../blob-range-reader.ts';
import { zeroBytes } from '../zero-bytes.ts';

/**
 * A byte string decided before any byte is read: held bytes (tar headers, JSON, padding),
 * ranges of stored blobs (layers) and runs of zeros (the holes of sparse files), in order. An
 * archive assembled on download is one of these, so its length is known up front and any
 * range of it can be read without the rest.
 */
export type Segment = { bytes: Buffer } | { blob: Digest; offset: number; length: number } | { zeros: number };

export type BytePlan = readonly Segment[];

export function segmentLength(s: Segment): number {
  return 'bytes' in s ? s.bytes.length : 'zeros' in s ? s.zeros : s.length;
}

export function planSize(plan: BytePlan): number {
  let size = 0;
  for (const s of plan) size += segmentLength(s);
  return size;
}

/** Adjacent held bytes joined, empty segments dropped: fewer, larger writes. */
export function compactPlan(plan: Iterable<Segment>): Segment[] {
  const out: Segment[] = [];
  let pending: Buffer[] = [];
  const flush = () => {
    if (pending.length > 0) out.push({ bytes: pending.length === 1 ? (pending[0] as Buffer) : Buffer.concat(pending) });
    pending = [];
  };
  for (const s of plan) {
    if ('bytes' in s) {
      if (s.bytes.length > 0) pending.push(s.bytes);
    } else if (segmentLength(s) > 0) {
      flush();
      out.push(s);
    }
  }
  flush();
  return out;
}

/**
 * A strong validator for the plan's bytes without reading them: held bytes hashed, blob
 * ranges named by digest (the store is content-addressed, so a digest fixes its bytes).
 */
export function planEtag(plan: BytePlan): string {
  const hash = createHash('sha256');
  for (const s of plan) {
    if ('bytes' in s) hash.update(`b${s.bytes.length}:`).update(s.bytes);
    else if ('zeros' in s) hash.update(`z${s.zeros};`);
    else hash.update(`r${s.blob}@${s.offset}+${s.length};`);
  }
  return `plan-${hash.digest('hex')}`;
}

/**
 * The plan's bytes, or the inclusive `range` of them, streamed: one blob open at a time,
 * read by range, so memory does not grow with the archive. A blob shorter than its segment
 * fails the stream (the store lost or changed something the plan relied on).
 */
export function openPlan(plan: BytePlan, store: BlobStore, range?: ByteRange): Readable {
  const start = range?.start ?? 0;
  const end = range ? range.end + 1 : planSize(plan);
  async function* bytes(): AsyncGenerator<Buffer> {
    // Ranges of one blob in ascending order (a flattened rootfs) share one open stream.
    const reader = new BlobRangeReader(store);
    try {
      let at = 0;
      for (const s of plan) {
        const length = segmentLength(s);
        const from = Math.max(start, at);
        const to = Math.min(end, at + length);
        if (from < to) {
          if ('bytes' in s) yield s.bytes.subarray(from - at, to - at);
          else if ('zeros' in s) yield* zeroBytes(to - from);
          else yield* reader.read(s.blob, s.offset + (from - at), to - from);
        }
        at += length;
        if (at >= end) break;
      }
    } finally {
      reader.close();
    }
  }
  return Readable.from(bytes(), { objectMode: false, highWaterMark: 1 << 20 });
}

/** sha256 and size of the plan's bytes, read once (nothing stored). */
export async function digestPlan(plan: BytePlan, store: BlobStore, onBytes?: (bytesDone: number) => void): Promise<{ digest: Digest; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of openPlan(plan, store) as AsyncIterable<Buffer>) {
    hash.update(chunk);
    size += chunk.length;
    onBytes?.(size);
  }
  return { digest: `sha256:${hash.digest('hex')}` as Digest, size };
}
