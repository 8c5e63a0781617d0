import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import { digestFromHash, type Digest } from '../digest.ts';
import { BlobTooLargeError } from './blob-store.ts';

/**
 * What every store does to the bytes it ingests: hash them and count them, failing the stream
 * with BlobTooLargeError once more than `maxBytes` went through.
 */
export class IngestMeter extends Transform {
  private readonly hash = createHash('sha256');
  /** Not `size`: uploaders take a Body's `size` for its length, known in advance. */
  bytes = 0;

  constructor(private readonly maxBytes?: number) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null, data?: Buffer) => void): void {
    this.bytes += chunk.length;
    if (this.maxBytes !== undefined && this.bytes > this.maxBytes) {
      done(new BlobTooLargeError(this.maxBytes));
      return;
    }
    this.hash.update(chunk);
    done(null, chunk);
  }

  /** Once the stream has ended. */
  digest(): Digest {
    return digestFromHash(this.hash);
  }
}
