import type { Readable } from 'node:stream';
import type { Digest } from '../digest.ts';
import type { BlobStore } from '../store/blob-store.ts';

/** Gaps up to this size are read and dropped rather than reopening the blob (tar headers, padding). */
const MAX_SKIP = 1 << 20;

/**
 * Reads ranges of stored blobs in the order asked, keeping one stream open across them: a
 * layer written from an uploaded tar asks for its files' ranges mostly in ascending order, so
 * a thousand files cost one open and one sequential read instead of a thousand. A range
 * behind the current position, in another blob or far ahead reopens at its start.
 */
export class BlobRangeReader {
  private blob: Digest | undefined;
  private source: Readable | undefined;
  private chunks: AsyncIterator<Buffer> | undefined;
  private position = 0;
  private pending: Buffer | undefined;

  constructor(private readonly store: BlobStore) {}

  /** Exactly `length` bytes of `blob` from `start`, in chunks; fails if the blob ends first. */
  async *read(blob: Digest, start: number, length: number): AsyncGenerator<Buffer> {
    if (length === 0) return;
    if (blob !== this.blob || start < this.position || start - this.position > MAX_SKIP) await this.reopen(blob, start);
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

  private async reopen(blob: Digest, start: number): Promise<void> {
    this.close();
    this.source = await this.store.open(blob, start > 0 ? { start, end: Number.MAX_SAFE_INTEGER } : undefined);
    this.chunks = (this.source as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    this.blob = blob;
    this.position = start;
  }
}
