import { Transform, type Duplex, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/** `source.pipe(transform)`, but an error on either side destroys the transform with it. */
export function pipeThrough<T extends Duplex>(source: Readable, transform: T): T {
  pipeline(source, transform).catch((err: unknown) => transform.destroy(err instanceof Error ? err : new Error(String(err))));
  return transform;
}

/** `source` as it is, telling `onBytes` the running total of bytes that went through. */
export function countBytes(source: Readable, onBytes: (bytesDone: number) => void): Readable {
  let done = 0;
  return pipeThrough(
    source,
    new Transform({
      transform(chunk: Buffer, _encoding, next) {
        done += chunk.length;
        onBytes(done);
        next(null, chunk);
      },
    }),
  );
}
