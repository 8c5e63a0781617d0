import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Readable } from 'node:stream';
import parseRange from 'range-parser';
import type { Digest } from '../digest.ts';
import { openPlan, planSize, type BytePlan } from '../image/sinks/byte-plan.ts';
import { Problem } from '../problem.ts';
import type { BlobStore, ByteRange } from '../store/blob-store.ts';

export interface SendOptions {
  contentType: string;
  filename?: string;
}

/** Content of known length that can be read whole or by range. */
export interface RangedContent {
  size: number;
  /** A strong validator: the same value always means the same bytes. */
  etag: string;
  open(range?: ByteRange): Promise<Readable> | Readable;
}

/**
 * Send content with `Content-Length`, `ETag` and single-range `Range` support (206/416;
 * `If-Range` honoured). Multiple or malformed ranges get the whole content, as RFC 9110 allows.
 */
export async function sendRanged(request: FastifyRequest, reply: FastifyReply, content: RangedContent, opts: SendOptions): Promise<FastifyReply> {
  const etag = `"${content.etag}"`;
  void reply.header('Content-Type', opts.contentType).header('ETag', etag).header('Accept-Ranges', 'bytes');
  if (opts.filename) void reply.header('Content-Disposition', `attachment; filename="${opts.filename}"`);

  let range: ByteRange | undefined;
  const rangeHeader = request.headers.range;
  const ifRange = request.headers['if-range'];
  if (rangeHeader && (ifRange === undefined || ifRange === etag)) {
    const parsed = parseRange(content.size, rangeHeader, { combine: true });
    if (parsed === -1) {
      void reply.header('Content-Range', `bytes */${content.size}`);
      throw new Problem(416, `range ${rangeHeader} is outside the ${content.size} bytes of the content`);
    }
    if (parsed !== -2 && parsed.type === 'bytes' && parsed.length === 1 && parsed[0]) range = parsed[0];
  }

  if (range) {
    void reply.status(206).header('Content-Range', `bytes ${range.start}-${range.end}/${content.size}`);
    void reply.header('Content-Length', range.end - range.start + 1);
  } else {
    void reply.header('Content-Length', content.size);
  }
  if (request.method === 'HEAD') return reply.send();
  return reply.send(await content.open(range));
}

/** A stored blob; its ETag is its digest. */
export async function sendBlob(request: FastifyRequest, reply: FastifyReply, store: BlobStore, digest: Digest, opts: SendOptions): Promise<FastifyReply> {
  const info = await store.stat(digest);
  if (!info) throw new Problem(404, `blob ${digest} not found`);
  return sendRanged(request, reply, { size: info.size, etag: digest, open: (range) => store.open(digest, range) }, opts);
}

/** An archive assembled from stored blobs as it is sent. */
export function sendPlan(request: FastifyRequest, reply: FastifyReply, store: BlobStore, plan: BytePlan, etag: string, opts: SendOptions): Promise<FastifyReply> {
  return sendRanged(request, reply, { size: planSize(plan), etag, open: (range) => openPlan(plan, store, range) }, opts);
}
