import type { FastifyReply, FastifyRequest } from 'fastify';
import parseRange from 'range-parser';
import type { Digest } from '../digest.ts';
import { Problem } from '../problem.ts';
import type { BlobStore } from '../store/blob-store.ts';

export interface SendBlobOptions {
  contentType: string;
  filename?: string;
}

/**
 * Stream a stored blob as the response, with `Content-Length`, `ETag` (the digest, which
 * never changes for the same URL's content) and single-range `Range` support (206/416).
 */
export async function sendBlob(
  request: FastifyRequest,
  reply: FastifyReply,
  store: BlobStore,
  digest: Digest,
  opts: SendBlobOptions,
): Promise<FastifyReply> {
  const info = await store.stat(digest);
  if (!info) throw new Problem(404, `blob ${digest} not found`);
  void reply.header('Content-Type', opts.contentType).header('ETag', `"${digest}"`).header('Accept-Ranges', 'bytes');
  if (opts.filename) void reply.header('Content-Disposition', `attachment; filename="${opts.filename}"`);

  let range: { start: number; end: number } | undefined;
  const rangeHeader = request.headers.range;
  const ifRange = request.headers['if-range'];
  if (rangeHeader && (ifRange === undefined || ifRange === `"${digest}"`)) {
    const parsed = parseRange(info.size, rangeHeader, { combine: true });
    if (parsed === -1) {
      void reply.header('Content-Range', `bytes */${info.size}`);
      throw new Problem(416, `range ${rangeHeader} is outside the ${info.size} bytes of the content`);
    }
    // -2 (malformed) and multiple ranges: answer with the whole content, as RFC 9110 allows.
    if (parsed !== -2 && parsed.type === 'bytes' && parsed.length === 1 && parsed[0]) range = parsed[0];
  }

  if (range) {
    void reply.status(206).header('Content-Range', `bytes ${range.start}-${range.end}/${info.size}`);
    void reply.header('Content-Length', range.end - range.start + 1);
  } else {
    void reply.header('Content-Length', info.size);
  }
  if (request.method === 'HEAD') return reply.send();
  return reply.send(await store.open(digest, range));
}
