/** Download a build's image to a file (through `<file>.part`, renamed when complete) or to stdout. */
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import type { BalerClient } from './client.ts';
import type { Reporter } from './reporter.ts';

export interface DownloadOptions {
  /** File to write; '-' for stdout; unset: the server's file name (Content-Disposition) in the current directory. */
  output?: string;
  format?: string;
  compression?: string;
}

/** Returns where the image went. */
export async function downloadImage(client: BalerClient, id: string, opts: DownloadOptions, reporter: Reporter): Promise<string> {
  const query = new URLSearchParams();
  if (opts.format) query.set('format', opts.format);
  if (opts.compression) query.set('compression', opts.compression);
  const res = await client.request(`/v1/builds/${encodeURIComponent(id)}/image${query.size ? `?${query}` : ''}`);
  const length = res.headers.get('content-length');
  const output = opts.output ?? fileNameOf(res.headers.get('content-disposition')) ?? `${id}.tar`;
  const task = reporter.bytes(`download ${output === '-' ? 'to stdout' : output}`, length === null ? undefined : Number(length));
  const counter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      task.advance(chunk.length);
      done(null, chunk);
    },
  });
  const body = Readable.fromWeb(res.body as WebReadableStream);
  if (output === '-') {
    await pipeline(body, counter, process.stdout, { end: false });
  } else {
    const partial = `${output}.part`;
    try {
      await pipeline(body, counter, createWriteStream(partial));
      await rename(partial, output);
    } catch (err) {
      await rm(partial, { force: true });
      throw err;
    }
  }
  task.done(res.headers.get('etag')?.replace(/"/g, '') ?? '');
  return output;
}

/** The file name of a `Content-Disposition: attachment; filename="…"`, without any directory. */
function fileNameOf(disposition: string | null): string | undefined {
  const name = disposition?.match(/filename="?([^";]+)"?/)?.[1];
  return name?.split('/').pop() || undefined;
}
