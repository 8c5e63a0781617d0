/** The registry index kept in Redis (a store shared by many hosts), against a real redis-server. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { digestOf } from '../../src/digest.ts';
import { connectRedis } from '../../src/redis.ts';
import { startPrivateRedis, type PrivateRedis } from '../../src/redis-server.ts';
import { RedisRegistryIndex } from '../../src/registry/registry-index.ts';

let dir: string;
let server: PrivateRedis;
let redis: Redis;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'baler-registry-index-'));
  server = await startPrivateRedis(dir);
  redis = connectRedis(server.url);
});
afterAll(async () => {
  redis?.disconnect();
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

it('remembers pulled images, and ignores an entry about another manifest', async () => {
  const index = new RedisRegistryIndex(redis);
  const manifest = digestOf('manifest');
  const image = { imageId: digestOf('config'), layers: [], repoTags: ['a:b'] };
  expect(await index.getPulled(manifest)).toBeNull();
  await index.setPulled(manifest, image);
  // Another host's connection sees it.
  const other = connectRedis(server.url);
  expect(await new RedisRegistryIndex(other).getPulled(manifest)).toEqual(image);
  other.disconnect();
  await redis.set(`baler:registry:pulled:${digestOf('other')}`, JSON.stringify({ manifestDigest: manifest, image }));
  expect(await index.getPulled(digestOf('other'))).toBeNull();
});

it('keeps the eight repositories last seen holding a blob, most recent first, each once', async () => {
  const index = new RedisRegistryIndex(redis);
  const blob = digestOf('blob');
  for (let i = 0; i < 10; i++) await index.addBlobRepo('registry.test:5000', blob, `repo${i}`);
  await index.addBlobRepo('registry.test:5000', blob, 'repo5');
  expect(await index.reposWithBlob('registry.test:5000', blob)).toEqual(['repo5', 'repo9', 'repo8', 'repo7', 'repo6', 'repo4', 'repo3', 'repo2']);
  expect(await index.reposWithBlob('other.test', blob)).toEqual([]);
});
