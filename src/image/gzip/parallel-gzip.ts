import type { Readable } from 'node:stream';
import type { ParallelDeflateOptions } from './deflate-piece.ts';
import { FINAL_EMPTY_BLOCK, GZIP_HEADER, gzipTrailer } from './gzip-frame.ts';
import { pieceStream } from './piece-stream.ts';

/**
 * A whole gzip member: GZIP_HEADER + deflatePiece(input) + FINAL_EMPTY_BLOCK + trailer, pigz
 * style (128 KiB blocks deflated in parallel on the threadpool, each primed with the previous
 * block's last 32 KiB). The bytes depend only on the input and the level, never on the
 * concurrency, the input's chunking or timing. An input error destroys the output with that
 * very error; destroying the output destroys the input.
 */
export function parallelGzip(input: Readable, opts?: ParallelDeflateOptions): Readable {
  return pieceStream(input, opts, {
    prefix: GZIP_HEADER,
    suffix: (info) => Buffer.concat([FINAL_EMPTY_BLOCK, gzipTrailer(info.crc32, info.rawLength)]),
  }).stream;
}
