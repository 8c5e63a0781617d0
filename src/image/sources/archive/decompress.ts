import { spawn } from 'node:child_process';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { detectCompression, type CompressionKind } from '../../compression.ts';
import { pipeThrough } from '../../../streams.ts';
import { DecompressionError } from './errors.ts';

export { detectCompression, type CompressionKind };

/**
 * The memory xz may take for its dictionary, which the input chooses (up to 4 GiB) and xz does
 * not limit by default; `xz -9` needs 65 MiB. zstd limits itself to 128 MiB by default.
 */
const XZ_MEMLIMIT = '256MiB';

/**
 * Decompressors Node lacks, as Debian's command-line tools reading stdin and writing stdout.
 * zstd comes from the `zstd` package (scripts/setup.mjs installs it); xz and bzip2 are there
 * on any Debian system that has dpkg.
 */
const TOOLS: Record<Exclude<CompressionKind, 'none' | 'gzip'>, { cmd: string; args: string[]; pkg: string }> = {
  zstd: { cmd: 'zstd', args: ['-d', '-c', '-q', '--no-progress'], pkg: 'zstd' },
  xz: { cmd: 'xz', args: ['-d', '-c', '-q', `--memlimit-decompress=${XZ_MEMLIMIT}`], pkg: 'xz-utils' },
  bzip2: { cmd: 'bzip2', args: ['-d', '-c', '-q'], pkg: 'bzip2' },
};

/**
 * The decompressed form of `source`, streamed. Corrupt input makes the returned stream fail with
 * DecompressionError (zlib's own errors for gzip, which carry a `Z_` code). Destroying the
 * returned stream stops the work (and the decompressor process, if any).
 */
export function decompress(kind: CompressionKind, source: Readable): Readable {
  if (kind === 'none') return source;
  if (kind === 'gzip') return pipeThrough(source, createGunzip());
  return spawnFilter(TOOLS[kind], source);
}

/** Whether an error came from decompressing the input (rather than from I/O around it). */
export function isDecompressionError(err: unknown): err is Error {
  if (err instanceof DecompressionError) return true;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' && code.startsWith('Z_');
}

/**
 * Run a filter process: `source` to its stdin, its stdout to the returned stream. The output
 * ends only once the process has exited 0, so a truncated or corrupt input is an error on the
 * stream, never a silently short result.
 */
function spawnFilter(tool: { cmd: string; args: string[]; pkg: string }, source: Readable): Readable {
  const out = new PassThrough();
  const child = spawn(tool.cmd, tool.args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (text: string) => {
    if (stderr.length < 4096) stderr += text;
  });
  child.on('error', (err: NodeJS.ErrnoException) => {
    source.destroy();
    out.destroy(
      err.code === 'ENOENT'
        ? new Error(`cannot decompress: '${tool.cmd}' is not installed (Debian package ${tool.pkg})`, { cause: err })
        : err,
    );
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
