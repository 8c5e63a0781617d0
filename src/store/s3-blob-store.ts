import { randomBytes } from 'node:crypto';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  UploadPartCopyCommand,
  paginateListObjectsV2,
  type CompletedPart,
  ListMultipartUploadsCommand,
} from '@aws-sdk/client-s3';
import type { Redis } from 'ioredis';
import { Upload } from '@aws-sdk/lib-storage';
import { hexOf, isDigest, type Digest } from '../digest.ts';
import { BlobNotFoundError, DigestMismatchError, STALE_INGEST_MS, StoreFullError, type BlobInfo, type BlobStore, type ByteRange, type PutOptions, type PutResult } from './blob-store.ts';
import { IngestMeter } from './ingest-meter.ts';
import type { IndexHome } from './store-index.ts';

export interface S3StoreOptions {
  bucket: string;
  region: string;
  /** Unset: AWS itself. For any other S3 server (Ceph RGW, MinIO): its URL. */
  endpoint?: string;
  /** Unset: the SDK's default chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, profiles…). */
  credentials?: { accessKeyId: string; secretAccessKey: string };
  /**
   * Upload part size. A put holds at most `uploadQueueSize + 1` parts in memory, whatever the
   * blob's size: 8 MiB × (4 + 1) = 40 MiB. 10 000 parts of 8 MiB allow blobs up to 80 GiB;
   * a put with a larger maxBytes gets larger parts.
   */
  partSize?: number;
  /** Parts uploaded at once per put. */
  uploadQueueSize?: number;
  /** Blobs larger than this are committed by multipart copy (S3 copies at most 5 GiB at once). */
  copyLimit?: number;
  /** Part size of a multipart copy. */
  copyPartSize?: number;
  /** Where the store's indexes live: the Redis every host using the bucket shares; unset: this process's memory. */
  indexRedis?: Redis;
}

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const MAX_PARTS = 10_000;
const BLOB_PREFIX = 'blobs/sha256/';
const INGEST_PREFIX = 'ingest/';

/**
 * Blob store on an S3-compatible object store. A blob is visible only when complete and
 * verified, as with the filesystem store, containerd-style: it is streamed to a temporary
 * `ingest/<random>` key while hashed and counted, then copied server-side to
 * `blobs/sha256/<hex>` (an object appears whole or not at all), and the temporary key is
 * deleted. What a writer that died leaves under `ingest/` (objects, unfinished multipart
 * uploads) is never read as a blob, and `sweepIngest` removes it.
 */
export class S3BlobStore implements BlobStore {
  private readonly partSize: number;
  private readonly queueSize: number;
  private readonly copyLimit: number;
  private readonly copyPartSize: number;
  readonly indexHome: IndexHome;

  private constructor(
    readonly client: S3Client,
    readonly bucket: string,
    opts: S3StoreOptions,
  ) {
    this.partSize = opts.partSize ?? 8 * MiB;
    this.queueSize = opts.uploadQueueSize ?? 4;
    this.copyLimit = opts.copyLimit ?? 5 * GiB;
    this.copyPartSize = opts.copyPartSize ?? 512 * MiB;
    this.indexHome = opts.indexRedis ? { kind: 'redis', redis: opts.indexRedis } : { kind: 'memory' };
  }

  /** Connects, creates the bucket if missing, and sweeps stale ingest leftovers. */
  static async create(opts: S3StoreOptions): Promise<S3BlobStore> {
    const client = new S3Client({
      region: opts.region,
      endpoint: opts.endpoint,
      credentials: opts.credentials,
      // Path-style URLs (http://host/bucket/key): no wildcard DNS for self-hosted servers.
      forcePathStyle: true,
      // Ceph RGW 16.2 rejects the SDK's default flexible checksums on streamed uploads; we
      // verify content by its sha256 ourselves.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: {
        // Each open blob stream holds a socket until it is read to the end: room for many.
        httpAgent: new HttpAgent({ keepAlive: true, maxSockets: 256 }),
        httpsAgent: new HttpsAgent({ keepAlive: true, maxSockets: 256 }),
        connectionTimeout: 10_000,
      },
    });
    const store = new S3BlobStore(client, opts.bucket, opts);
    await store.ensureBucket();
    await store.sweepIngest(STALE_INGEST_MS);
    return store;
  }

  /** Idempotent, and safe when several processes start at once. */
  private async ensureBucket(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
      return;
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    try {
      await this.client.send(new CreateBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      // Another process made it first (or it is ours already): check we can use it.
      const name = (err as Error).name;
      if (name !== 'BucketAlreadyOwnedByYou' && name !== 'BucketAlreadyExists') throw err;
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
    }
  }

  private keyOf(digest: Digest): string {
    return BLOB_PREFIX + hexOf(digest);
  }

  async put(source: Readable, opts: PutOptions = {}): Promise<PutResult> {
    const tmp = `${INGEST_PREFIX}${Date.now()}-${randomBytes(8).toString('hex')}`;
    const meter = new IngestMeter(opts.maxBytes);
    const partSize = Math.max(this.partSize, opts.maxBytes === undefined ? 0 : Math.ceil(opts.maxBytes / MAX_PARTS));
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.bucket, Key: tmp, Body: meter },
      partSize,
      queueSize: this.queueSize,
      // A failed multipart upload is aborted: its parts are freed.
      leavePartsOnError: false,
    });
    try {
      const uploaded = upload.done();
      // The upload failing stops the reading; the source failing (or the meter: too large)
      // fails the upload. The first error is the one that counts.
      uploaded.catch((err: unknown) => meter.destroy(err as Error));
      const results = await Promise.allSettled([pipeline(source, meter), uploaded]);
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;

      const size = meter.bytes;
      const digest = meter.digest();
      if (opts.expectedDigest && opts.expectedDigest !== digest) throw new DigestMismatchError(opts.expectedDigest, digest);
      const existed = (await this.stat(digest)) !== null;
      // Copied even when it exists: the copy is its new write time (garbage collection's
      // grace period starts again), and replacing an object is atomic.
      await this.commit(tmp, this.keyOf(digest), size);
      return { digest, size, created: !existed };
    } catch (err) {
      throw isStoreFull(err) ? new StoreFullError({ cause: err }) : err;
    } finally {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: tmp })).catch(() => {});
    }
  }

  /** Server-side copy `from` → `to`: one CopyObject, or a multipart copy above the limit. */
  private async commit(from: string, to: string, size: number): Promise<void> {
    const CopySource = `${this.bucket}/${from}`;
    if (size <= this.copyLimit) {
      await this.client.send(new CopyObjectCommand({ Bucket: this.bucket, Key: to, CopySource }));
      return;
    }
    const { UploadId } = await this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: to }));
    try {
      const parts: CompletedPart[] = [];
      for (let start = 0, n = 1; start < size; start += this.copyPartSize, n++) {
        const end = Math.min(start + this.copyPartSize, size) - 1;
        const { CopyPartResult } = await this.client.send(new UploadPartCopyCommand({ Bucket: this.bucket, Key: to, UploadId, PartNumber: n, CopySource, CopySourceRange: `bytes=${start}-${end}` }));
        parts.push({ PartNumber: n, ETag: CopyPartResult?.ETag });
      }
      await this.client.send(new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: to, UploadId, MultipartUpload: { Parts: parts } }));
    } catch (err) {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: to, UploadId })).catch(() => {});
      throw err;
    }
  }

  async stat(digest: Digest): Promise<BlobInfo | null> {
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.keyOf(digest) }));
      return { digest, size: head.ContentLength ?? 0 };
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  async open(digest: Digest, range?: ByteRange): Promise<Readable> {
    try {
      const got = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.keyOf(digest), Range: range ? `bytes=${range.start}-${range.end}` : undefined }));
      return got.Body as Readable;
    } catch (err) {
      if (isNotFound(err)) throw new BlobNotFoundError(digest);
      throw err;
    }
  }

  async *list(): AsyncIterable<BlobInfo & { modifiedMs: number }> {
    for await (const page of paginateListObjectsV2({ client: this.client }, { Bucket: this.bucket, Prefix: BLOB_PREFIX })) {
      for (const object of page.Contents ?? []) {
        const digest = `sha256:${(object.Key ?? '').slice(BLOB_PREFIX.length)}`;
        if (!isDigest(digest)) continue;
        yield { digest, size: object.Size ?? 0, modifiedMs: object.LastModified?.getTime() ?? 0 };
      }
    }
  }

  async delete(digest: Digest): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.keyOf(digest) }));
  }

  async sweepIngest(olderThanMs: number): Promise<number> {
    const cutoff = Date.now() - olderThanMs;
    let removed = 0;
    for await (const page of paginateListObjectsV2({ client: this.client }, { Bucket: this.bucket, Prefix: INGEST_PREFIX })) {
      for (const object of page.Contents ?? []) {
        if (!object.Key || (object.LastModified?.getTime() ?? 0) >= cutoff) continue;
        await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: object.Key }));
        removed++;
      }
    }
    // Multipart uploads of writers that died: invisible in listings, but their parts take space.
    let KeyMarker: string | undefined;
    let UploadIdMarker: string | undefined;
    do {
      const page = await this.client.send(new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: INGEST_PREFIX, KeyMarker, UploadIdMarker }));
      for (const upload of page.Uploads ?? []) {
        if ((upload.Initiated?.getTime() ?? 0) >= cutoff) continue;
        await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: upload.Key, UploadId: upload.UploadId }));
        removed++;
      }
      ({ NextKeyMarker: KeyMarker, NextUploadIdMarker: UploadIdMarker } = page.IsTruncated ? page : {});
    } while (KeyMarker !== undefined);
    return removed;
  }

  async ping(): Promise<void> {
    const probe = `${INGEST_PREFIX}.ping-${randomBytes(4).toString('hex')}`;
    await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: probe, Body: new Uint8Array(0), ContentLength: 0 }));
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: probe }));
  }

  close(): void {
    this.client.destroy();
  }
}

function statusOf(err: unknown): number | undefined {
  return err instanceof S3ServiceException ? err.$metadata.httpStatusCode : undefined;
}

function isNotFound(err: unknown): boolean {
  const name = (err as Error | undefined)?.name;
  return name === 'NoSuchKey' || name === 'NotFound' || name === 'NoSuchBucket' || statusOf(err) === 404;
}

/**
 * The server has no room: RGW's user/bucket quota (`QuotaExceeded`, 403) and a full cluster
 * (`InsufficientCapacity`, 507, RGW's answer to ENOSPC); MinIO's `XMinioStorageFull`.
 */
function isStoreFull(err: unknown): boolean {
  const name = (err as Error | undefined)?.name;
  return name === 'QuotaExceeded' || name === 'InsufficientCapacity' || name === 'XMinioStorageFull' || statusOf(err) === 507;
}
