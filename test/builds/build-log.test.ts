/** Build logs against a real (private) redis-server. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { BuildLogs } from '../../src/builds/build-log.ts';
import { startPrivateRedis, type PrivateRedis } from '../../src/redis-server.ts';

let dir: string;
let server: PrivateRedis;
let redis: Redis;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'baler-log-'));
  server = await startPrivateRedis(dir);
  redis = new Redis(server.url);
});
afterAll(async () => {
  redis.disconnect();
  await server.stop();
  await rm(dir, { recursive: true, force: true });
});

it('appends in order and stops at the cap with a note', async () => {
  const logs = new BuildLogs(redis, 20);
  await logs.append('b1', 'hello ');
  await logs.append('b1', 'world\n');
  expect(await logs.read('b1')).toBe('hello world\n');
  await logs.append('b1', 'x'.repeat(50));
  await logs.append('b1', 'never shown');
  expect(await logs.read('b1')).toBe('hello world\nxxxxxxxx\n[log truncated at 20 bytes]\n');
  await logs.clear('b1');
  expect(await logs.read('b1')).toBe('');
});
