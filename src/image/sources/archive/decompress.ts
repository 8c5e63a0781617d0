import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { CompressionKind } from '../../compression.ts';
import { pipeThrough } from '../../../streams.ts';
import { runDecompressorProcess, type ProcessDecompression } from './decompressor-process.ts';
import { DecompressionError } from './errors.ts';

/** Starts the decompressor process of `kind` over `source` and returns its output (see runDecompressorProcess). */
export type DecompressorRunner = (kind: ProcessDecompression, source: Readable) => Readable;

let runner: DecompressorRunner = runDecompressorProcess;

/**
 * Where zstd, xz and bzip2 run. By default a child process of the calling thread; a build's
 * sandbox thread (src/sandbox/build-thread.ts) has the worker's main thread start them instead,
 * so that they are reaped, and killed when the build is stopped, by a thread that outlives it.
 */
export function setDecompressorRunner(run: DecompressorRunner): void {
  runner = run;
}

/**
 * The decompressed form of `source`, streamed: gzip by zlib in this thread, zstd, xz and bzip2
 * by Debian's tools. Corrupt input makes the returned stream fail with DecompressionError
 * (zlib's own errors for gzip, which carry a `Z_` code). Destroying the returned stream stops
 * the work (and the decompressor process, if any).
 */
export function decompress(kind: CompressionKind, source: Readable): Readable {
  if (kind === 'none') return source;
  if (kind === 'gzip') return pipeThrough(source, createGunzip());
  return runner(kind, source);
}

/** Whether an error came from decompressing the input (rather than from I/O around it). */
export function isDecompressionError(err: unknown): err is Error {
  if (err instanceof DecompressionError) return true;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' && code.startsWith('Z_');
}
