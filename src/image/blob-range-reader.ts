import type { Readable } from 'node:stream';
import type { Digest } from '../digest.ts';
import type { BlobStore } from '../store/blob-store.ts';

/** Gaps up to this size are read and dropped rather than reopening the blob (tar headers, padding). */
const MAX_SKIP = 1 << 20;
/** The read-ahead of the first open after reading went sequential again; it doubles from there. */
const MIN_READAHEAD = 64 * 1024;

/**
 * Reads ranges of stored blobs in the order asked, keeping one stream open across them: a
 * layer written from an uploaded tar asks for its files' ranges mostly in ascending order, so
 * a thousand files cost one open and one sequential read instead of a thousand. A range
 * behind the current position, in another blob or far ahead reopens at its start.
 *
 * An open reads ahead to the blob's end only while the ranges come in order. Once one goes
 * backwards (a tar not in path order), opens read just the range asked for, and read ahead
 * again, doubling, as ranges follow each other: otherwise every file of a tar in shuffled
 * order would cost a read of a whole chunk (1 MiB), and a million tiny files a terabyte.
 */
export class BlobRangeReader {
  private blob: Digest | undefined;
  private source: Readable | undefined;
  private chunks: AsyncIterator<Buffer> | undefined;
  private position = 0;
  /** The last byte the open stream reads (inclusive). */
  private end = -1;
  /** How far past a range an open reads: to the blob's end until reading goes backwards. */
  private readahead = Infinity;
  private pending: Buffer | undefined;

  constructor(private readonly store: BlobStore) {}

  /** Exactly `length` bytes of `blob` from `start`, in chunks; fails if the blob ends first. */
  async *read(blob: Digest, start: number, length: number): AsyncGenerator<Buffer> {
    if (length === 0) return;
    const sameBlob = blob === this.blob;
    if (!sameBlob || start < this.position || start - this.position > MAX_SKIP || start + length - 1 > this.end) {
      if (sameBlob && start < this.position) this.readahead = 0;
      else if (sameBlob && start - this.position <= MAX_SKIP) this.readahead = Math.max(MIN_READAHEAD, this.readahead * 2);
      await this.reopen(blob, start, length);
    }
    let skip = start - this.position;
    let left = length;
    while (left > 0) {
      const chunk = await this.next();
      if (!chunk) throw new Error(`blob ${blob} ended before byte ${start + length} (a range planned past its end)`);
      let piece = chunk;
      if (skip > 0) {
        const dropped = Math.min(skip, piece.length);
        piece = piece.subarray(dropped);
        skip -= dropped;
        this.position += dropped;
        if (piece.length === 0) continue;
      }
      const used = piece.subarray(0, left);
      if (used.length < piece.length) this.pending = piece.subarray(used.length);
      this.position += used.length;
      left -= used.length;
      yield used;
    }
  }

  /** Let go of the open stream; call when done, also after a failure. */
  close(): void {
    this.source?.destroy();
    this.source = undefined;
    this.chunks = undefined;
    this.blob = undefined;
    this.pending = undefined;
  }

  private async next(): Promise<Buffer | undefined> {
    if (this.pending) {
      const chunk = this.pending;
      this.pending = undefined;
      return chunk;
    }
    const step = await this.chunks?.next();
    return step && !step.done ? step.value : undefined;
  }

  private async reopen(blob: Digest, start: number, length: number): Promise<void> {
    const readahead = this.readahead;
    this.close();
    this.end = readahead === Infinity ? Number.MAX_SAFE_INTEGER : start + length - 1 + readahead;
    this.source = await this.store.open(blob, start > 0 || this.end < Number.MAX_SAFE_INTEGER ? { start, end: this.end } : undefined);
    this.chunks = (this.source as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    this.blob = blob;
    this.position = start;
    this.readahead = readahead;
  }
}
