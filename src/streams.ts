import type { Duplex, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/** `source.pipe(transform)`, but an error on either side destroys the transform with it. */
export function pipeThrough<T extends Duplex>(source: Readable, transform: T): T {
  pipeline(source, transform).catch((err: unknown) => transform.destroy(err instanceof Error ? err : new Error(String(err))));
  return transform;
}
