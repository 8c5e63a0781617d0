import type { Readable } from 'node:stream';
import { TarFormatError } from './tar-fields.ts';

/** Sequential reader over a stream that can read or skip exact byte counts. */
export class ChunkReader {
  position = 0;
  private readonly iterator: AsyncIterator<Buffer>;
  private pending: Buffer = Buffer.alloc(0);
  private done = false;

  constructor(source: Readable) {
    this.iterator = source[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  }

  private async next(): Promise<Buffer | null> {
    if (this.done) return null;
    const next = await this.iterator.next();
    if (next.done) {
      this.done = true;
      return null;
    }
    return next.value;
  }

  /** Returns up to n bytes (fewer only at end of stream), or null at end of stream. */
  async read(n: number): Promise<Buffer | null> {
    if (this.pending.length < n) {
      // Gathered first and joined once: growing one buffer chunk by chunk would copy O(n²).
      const parts = this.pending.length > 0 ? [this.pending] : [];
      let length = this.pending.length;
      while (length < n) {
        const chunk = await this.next();
        if (!chunk) break;
        parts.push(chunk);
        length += chunk.length;
      }
      if (parts.length > 0) this.pending = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, length);
    }
    if (this.pending.length === 0 && n > 0) return null;
    const out = this.pending.subarray(0, n);
    this.pending = this.pending.subarray(out.length);
    this.position += out.length;
    return out;
  }

  async skip(n: number): Promise<void> {
    let left = n;
    while (left > 0) {
      if (this.pending.length === 0) {
        const chunk = await this.next();
        if (!chunk) throw new TarFormatError('truncated tar entry data', this.position);
        this.pending = chunk;
      }
      const take = Math.min(left, this.pending.length);
      this.pending = this.pending.subarray(take);
      this.position += take;
      left -= take;
    }
  }
}
