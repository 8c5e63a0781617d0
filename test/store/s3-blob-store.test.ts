/**
 * The S3 store against a real S3 server: Ceph RGW (single node, loopback; test/support/rgw.ts).
 * The same contract as the filesystem store, and what only S3 has: the bucket made at start
 * (by racing processes), multipart commit copies, and the server's quota as StoreFullError.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { ListMultipartUploadsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestOf } from '../../src/digest.ts';
import { compressedLayer, layerIndexOf, RedisCompressedLayerIndex, type CompressedLayerIndex } from '../../src/image/sinks/layer-compression.ts';
import { connectRedis } from '../../src/redis.ts';
import { startPrivateRedis } from '../../src/redis-server.ts';
import { registryIndexOf, RedisRegistryIndex } from '../../src/registry/registry-index.ts';
import { StoreFullError } from '../../src/store/blob-store.ts';
import { openBlobStore } from '../../src/store/open-blob-store.ts';
import { S3BlobStore, type S3StoreOptions } from '../../src/store/s3-blob-store.ts';
import { startRgw, type Rgw } from '../support/rgw.ts';
import { describeBlobStoreContract } from './blob-store-contract.ts';

let rgw: Rgw;
beforeAll(async () => {
  rgw = await startRgw();
});
afterAll(async () => rgw?.stop());

const optionsFor = (bucket: string, extra: Partial<S3StoreOptions> = {}): S3StoreOptions => ({
  bucket,
  region: rgw.region,
  endpoint: rgw.endpoint,
  credentials: { accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey },
  ...extra,
});

async function ingestLeftovers(bucket: string): Promise<string[]> {
  const s3 = rgw.client();
  try {
    const objects = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'ingest/' }));
    const uploads = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: 'ingest/' }));
    return [...(objects.Contents ?? []).map((o) => `object ${o.Key}`), ...(uploads.Uploads ?? []).map((u) => `upload ${u.Key} ${u.UploadId}`)].sort();
  } finally {
    s3.destroy();
  }
}

describeBlobStoreContract('S3BlobStore on Ceph RGW', async () => {
  const bucket = `contract-${randomBytes(4).toString('hex')}`;
  const store = await S3BlobStore.create(optionsFor(bucket));
  return {
    store,
    env: {
      BALER_STORE: 's3',
      BALER_S3_ENDPOINT: rgw.endpoint,
      BALER_S3_BUCKET: bucket,
      AWS_ACCESS_KEY_ID: rgw.accessKeyId,
      AWS_SECRET_ACCESS_KEY: rgw.secretAccessKey,
    },
    ingestLeftovers: () => ingestLeftovers(bucket),
    close: async () => store.close(),
  };
});

describe('S3BlobStore, S3 specifics', () => {
  it('makes its bucket at start, when processes race to it too', async () => {
    const bucket = `raced-${randomBytes(4).toString('hex')}`;
    const stores = await Promise.all([1, 2, 3].map(() => S3BlobStore.create(optionsFor(bucket))));
    const put = await stores[0]!.put(Readable.from(['made']));
    expect(await stores[2]!.stat(put.digest)).toEqual({ digest: put.digest, size: 4 });
    for (const s of stores) s.close();
  });

  it('keeps blobs at blobs/sha256/<hex>, committed by multipart copy above the copy limit', async () => {
    const bucket = `copy-${randomBytes(4).toString('hex')}`;
    // 5 MiB is the smallest part S3 allows: a 12 MiB blob is copied in three parts.
    const store = await S3BlobStore.create(optionsFor(bucket, { copyLimit: 5 * 1024 ** 2, copyPartSize: 5 * 1024 ** 2 }));
    const data = randomBytes(12 * 1024 ** 2 + 7);
    const put = await store.put(Readable.from([data]));
    expect(put).toEqual({ digest: digestOf(data), size: data.length, created: true });
    expect((await buffer(await store.open(put.digest))).equals(data)).toBe(true);
    const s3 = rgw.client();
    const listing = await s3.send(new ListObjectsV2Command({ Bucket: bucket }));
    expect(listing.Contents?.map((o) => [o.Key, o.Size])).toEqual([[`blobs/sha256/${put.digest.slice(7)}`, data.length]]);
    s3.destroy();
    store.close();
  });

  it("maps the server's quota to StoreFullError, keeping nothing", async () => {
    const bucket = `full-${randomBytes(4).toString('hex')}`;
    const store = await S3BlobStore.create(optionsFor(bucket));
    for (const args of [
      ['quota', 'set', '--quota-scope=bucket', `--bucket=${bucket}`, '--max-size=1048576'],
      ['quota', 'enable', '--quota-scope=bucket', `--bucket=${bucket}`],
    ]) {
      const result = await rgw.admin(args);
      expect(result.code, result.stderr).toBe(0);
    }
    const data = randomBytes(2 * 1024 ** 2);
    await expect(store.put(Readable.from([data]))).rejects.toBeInstanceOf(StoreFullError);
    expect(await store.stat(digestOf(data))).toBeNull();
    expect(await ingestLeftovers(bucket)).toEqual([]);
    store.close();
  });
});

describe('openBlobStore with BALER_STORE=s3', () => {
  it('gives every host the same compressed-layer index, in Redis', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'baler-s3-hosts-'));
    const redisServer = await startPrivateRedis(join(dir, 'redis'));
    // The SDK's default credential chain, as the service uses it.
    Object.assign(process.env, { AWS_ACCESS_KEY_ID: rgw.accessKeyId, AWS_SECRET_ACCESS_KEY: rgw.secretAccessKey });
    const config = { store: 's3' as const, s3: { endpoint: rgw.endpoint, bucket: `hosts-${randomBytes(4).toString('hex')}`, region: rgw.region }, dataDir: dir };
    const [redisA, redisB] = [connectRedis(redisServer.url), connectRedis(redisServer.url)];
    try {
      const [hostA, hostB] = [await openBlobStore(config, { redis: redisA }), await openBlobStore(config, { redis: redisB })];
      expect(layerIndexOf(hostA)).toBeInstanceOf(RedisCompressedLayerIndex);
      expect(registryIndexOf(hostB)).toBeInstanceOf(RedisRegistryIndex);

      const data = randomBytes(256 * 1024);
      const put = await hostA.put(Readable.from([data]));
      const layer = { diffId: put.digest, digest: put.digest, size: put.size, mediaType: 'application/x-tar', open: () => hostA.open(put.digest) };
      const gz = await compressedLayer(hostA, layer, 'gzip');
      let compressions = 0;
      const counting = (inner: CompressedLayerIndex): CompressedLayerIndex => ({
        get: (method, diffId) => inner.get(method, diffId),
        set: (method, diffId, blob) => (compressions++, inner.set(method, diffId, blob)),
      });
      // Host B finds host A's compressed layer: no second compression.
      expect(await compressedLayer(hostB, layer, 'gzip', counting(layerIndexOf(hostB)))).toEqual(gz);
      expect(compressions).toBe(0);
      // A remembered blob that is gone is made again.
      await hostA.delete(gz.digest);
      expect(await compressedLayer(hostB, layer, 'gzip', counting(layerIndexOf(hostB)))).toEqual(gz);
      expect(compressions).toBe(1);
    } finally {
      redisA.disconnect();
      redisB.disconnect();
      await redisServer.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
