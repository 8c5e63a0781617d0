/** Zeros are handed out as slices of this one buffer: a hole of any size costs 1 MiB, once. */
const ZEROS = Buffer.alloc(1 << 20);

/**
 * `length` zero bytes in chunks of at most 1 MiB, all views of one shared buffer: consumers
 * read them (hash, compress, write) and never write to them, as with any chunk of a stream.
 */
export function* zeroBytes(length: number): Generator<Buffer> {
  for (let left = length; left > 0; left -= ZEROS.length) yield ZEROS.subarray(0, Math.min(left, ZEROS.length));
}
