import type { FastifyPluginAsync } from 'fastify';
import { isDigest, type Digest } from '../digest.ts';
import { Problem } from '../problem.ts';
import { BlobTooLargeError, DigestMismatchError, QuotaExceededError, StoreFullError, type BlobStore } from '../store/blob-store.ts';
import type { BlobOwners } from '../auth/blob-owners.ts';
import type { TenantQuota } from '../auth/tenant-quota.ts';
import { ChargedStore } from '../store/charged-store.ts';
import type { Idempotency } from '../submission/idempotency.ts';
import { operationSchema } from './openapi.ts';
import { sendBlob } from './send-blob.ts';
import { idempotencyKeyOf, sendSubmissionResponse } from './submission-reply.ts';

export interface BlobsOptions {
  store: BlobStore;
  maxUploadBytes: number;
  /** What each tenant may store; an upload is charged to its tenant as it streams. */
  quota: TenantQuota;
  idempotency: Idempotency;
  owners: BlobOwners;
}

/** `/v1/blobs`: uploads streamed straight into the store, and downloads. */
export const blobsRoutes: FastifyPluginAsync<BlobsOptions> = async (app, { store, maxUploadBytes, quota, idempotency, owners }) => {
  // Any content type is a blob. The parser leaves the body unread so that the handler can
  // stream it to the store; the size limit is enforced while streaming.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, _payload, done) => done(null));

  app.post<{ Querystring: { digest?: Digest } }>('/v1/blobs', { schema: operationSchema('uploadBlob') }, async (request, reply) => {
    const declared = Number(request.headers['content-length'] ?? NaN);
    if (declared > maxUploadBytes) {
      void reply.header('Connection', 'close');
      throw new Problem(413, `upload of ${declared} bytes is larger than the limit of ${maxUploadBytes}`);
    }
    try {
      // A replayed upload is answered without reading its body again; the request is the
      // same one if it claims the same digest (or none).
      const answer = await idempotency.run(idempotencyKeyOf(request), `${request.tenant}:blobs`, request.query.digest ?? '', async () => {
        // Charged to the tenant: its declared length reserved before the body is read (a body that
        // cannot fit is refused unread), the rest as it streams; bytes it is charged for
        // already, named with ?digest=, cost nothing again.
        const put = await new ChargedStore(store, quota, request.tenant).put(request.raw, {
          expectedDigest: request.query.digest,
          maxBytes: maxUploadBytes,
          expectedBytes: Number.isSafeInteger(declared) ? declared : undefined,
        });
        request.log.info({ digest: put.digest, size: put.size, created: put.created }, 'blob stored');
        return { status: put.created ? 201 : 200, location: `/v1/blobs/${put.digest}`, body: { digest: put.digest, size: put.size } };
      });
      return sendSubmissionResponse(reply, answer);
    } catch (err) {
      if (err instanceof DigestMismatchError) throw new Problem(422, err.message, { cause: err });
      if (err instanceof StoreFullError) {
        void reply.header('Connection', 'close');
        throw new Problem(507, err.message, { cause: err });
      }
      if (err instanceof BlobTooLargeError || err instanceof QuotaExceededError) {
        void reply.header('Connection', 'close');
        throw new Problem(413, err.message, { cause: err });
      }
      throw err;
    }
  });

  /** A tenant sees only the blobs it uploaded (the store keeps each content once for all). */
  const download = async (request: { params: { digest: string }; tenant: string }): Promise<Digest> => {
    const { digest } = request.params;
    if (!isDigest(digest)) throw new Problem(400, `'${digest}' is not a digest (sha256:<64 hex>)`);
    if (!(await owners.owns(request.tenant, digest))) throw new Problem(404, `blob ${digest} not found`);
    return digest;
  };
  app.get<{ Params: { digest: string } }>('/v1/blobs/:digest', { exposeHeadRoute: false, schema: operationSchema('getBlob') }, async (request, reply) =>
    sendBlob(request, reply, store, await download(request), { contentType: 'application/octet-stream' }),
  );
  app.head<{ Params: { digest: string } }>('/v1/blobs/:digest', { schema: operationSchema('headBlob') }, async (request, reply) =>
    sendBlob(request, reply, store, await download(request), { contentType: 'application/octet-stream' }),
  );
};
