import type { Redis } from 'ioredis';
import type { Config } from '../config.ts';
import type { BlobStore } from './blob-store.ts';
import { FsBlobStore } from './fs-blob-store.ts';

/**
 * The store the config names: the filesystem under DATA_DIR (one host; its indexes are JSON
 * files beside the blobs), or an S3 bucket shared by many hosts, whose indexes (compressed
 * layers, registry pulls and mounts) then live in the Redis every host shares: given `redis`,
 * they do; without it (a tool, a test) they are this process's own.
 */
export async function openBlobStore(config: Pick<Config, 'store' | 's3' | 'dataDir'>, deps: { redis?: Redis } = {}): Promise<BlobStore> {
  if (config.store === 'fs') return FsBlobStore.create(config.dataDir);
  // Loaded only when used: the AWS SDK takes seconds to import.
  const { S3BlobStore } = await import('./s3-blob-store.ts');
  return S3BlobStore.create({ bucket: config.s3.bucket, region: config.s3.region, endpoint: config.s3.endpoint, indexRedis: deps.redis });
}
