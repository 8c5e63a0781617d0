import { spawn } from 'node:child_process';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { CompressionKind } from '../../compression.ts';
import { DecompressionError } from './errors.ts';

/** The compressions Node lacks a decoder for: decompressed by one of Debian's tools. */
export type ProcessDecompression = Exclude<CompressionKind, 'none' | 'gzip'>;

/**
 * The memory xz may take for its dictionary, which the input chooses (up to 4 GiB) and xz does
 * not limit by default; `xz -9` needs 65 MiB. zstd limits itself to 128 MiB by default;
 * bzip2 needs at most ~4 MiB (its block size is at most 900 kB).
 */
const XZ_MEMLIMIT = '256MiB';

/**
 * Debian's command-line tools, reading stdin and writing stdout: the reference decoders of
 * each format, maintained by the distribution (security updates with the rest of the host),
 * streaming in constant memory, and running outside Node's heap and event loop. Their
 * packages (`zstd`, `xz-utils`, `bzip2`) are installed by scripts/setup.mjs and the worker's
 * image.
 */
const TOOLS: Readonly<Record<ProcessDecompression, { cmd: string; args: string[]; pkg: string }>> = {
  zstd: { cmd: 'zstd', args: ['-d', '-c', '-q', '--no-progress'], pkg: 'zstd' },
  xz: { cmd: 'xz', args: ['-d', '-c', '-q', `--memlimit-decompress=${XZ_MEMLIMIT}`], pkg: 'xz-utils' },
  bzip2: { cmd: 'bzip2', args: ['-d', '-c', '-q'], pkg: 'bzip2' },
};

export function isProcessDecompression(kind: unknown): kind is ProcessDecompression {
  return typeof kind === 'string' && Object.hasOwn(TOOLS, kind);
}

/**
 * Run the decompressor of `kind` as a child of this thread: `source` to its stdin, its stdout
 * to the returned stream. The output ends only once the process has exited 0, so a truncated
 * or corrupt input is an error on the stream (DecompressionError), never a silently short
 * result. Destroying the returned stream kills the process (SIGKILL) and destroys `source`.
 *
 * Only the worker's main thread calls this while builds run (src/sandbox/remote-decompress.ts):
 * a child is reaped by the thread that started it, and a build's sandbox thread may be
 * terminated at any moment.
 */
export function runDecompressorProcess(kind: ProcessDecompression, source: Readable): Readable {
  const tool = TOOLS[kind];
  const out = new PassThrough();
  const child = spawn(tool.cmd, tool.args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (text: string) => {
    if (stderr.length < 4096) stderr += text;
  });
  child.on('error', (err: NodeJS.ErrnoException) => {
    source.destroy();
    out.destroy(err.code === 'ENOENT' ? new Error(`cannot decompress: '${tool.cmd}' is not installed (Debian package ${tool.pkg})`, { cause: err }) : err);
  });
  // EPIPE when the filter exits early on bad input: its exit status tells the story.
  pipeline(source, child.stdin).catch(() => {});
  child.stdout.pipe(out, { end: false });
  child.on('close', (code, signal) => {
    if (out.destroyed) return;
    if (code === 0) out.end();
    else {
      const detail = stderr.trim().split('\n').slice(-3).join('; ') || (signal ? `killed by ${signal}` : `exit status ${code}`);
      out.destroy(new DecompressionError(`${tool.cmd}: ${detail}`));
    }
  });
  out.on('close', () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      source.destroy();
    }
  });
  return out;
}
