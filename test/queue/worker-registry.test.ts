/** Why a build waits, from the live workers' entries in a real (private) redis-server. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { ResolvedSpec } from '../../src/builds/spec.ts';
import { whyNoWorkerServes, WorkerRegistration, type WorkerEntry } from '../../src/queue/worker-registry.ts';
import { startPrivateRedis, type PrivateRedis } from '../../src/redis-server.ts';

let dir: string;
let server: PrivateRedis;
let redis: Redis;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'baler-registry-'));
  server = await startPrivateRedis(dir);
}, 60_000);
afterAll(async () => {
  await server.stop();
  await rm(dir, { recursive: true, force: true });
});

const spec = (s: Partial<ResolvedSpec>) => ({ architecture: 'amd64', memorySize: 512, ...s }) as ResolvedSpec;

async function withWorker(entry: Partial<WorkerEntry>, check: (redis: Redis) => Promise<void>): Promise<void> {
  // A connection of its own each time: whyNoWorkerServes remembers a connection's answer for a second.
  redis = new Redis(server.url);
  const full = { id: 'w1', host: 'h', accel: 'tcg' as const, maxVmMemoryMiB: 1024, concurrency: 1, running: 0, queues: [], startedAt: '', ...entry };
  const registration = new WorkerRegistration(redis, () => full, 10_000);
  await registration.start();
  try {
    await check(redis);
  } finally {
    await registration.stop();
    redis.disconnect();
  }
}

it('says why a build waits: no worker, none for its platform (of those it serves, natively or emulated), none with a big enough VM; a worker from before platforms runs linux/amd64', async () => {
  redis = new Redis(server.url);
  expect(await whyNoWorkerServes(redis, spec({}))).toMatch(/^no worker is running/);
  redis.disconnect();

  await withWorker({ platform: 'linux/arm64' }, async (r) => {
    expect(await whyNoWorkerServes(r, spec({}))).toBe('no live worker runs linux/amd64 VMs (the workers run linux/arm64); the build waits in the queue until such a worker starts');
  });
  await withWorker({ platform: 'linux/amd64', platforms: [{ platform: 'linux/amd64', accel: 'tcg' }] }, async (r) => {
    const arm64 = spec({ architecture: 'arm64', variant: 'v8', runAsRoot: 'true' });
    expect(await whyNoWorkerServes(r, arm64)).toBe('no live worker runs linux/arm64 VMs (the workers run linux/amd64); the build waits in the queue until such a worker starts');
    const both = { ...spec({ architecture: 'amd64', runAsRoot: 'true' }), platforms: ['linux/amd64', 'linux/arm64'] };
    expect(await whyNoWorkerServes(r, both)).toBe('no live worker runs linux/amd64 and linux/arm64 VMs (the workers run linux/amd64); the build waits in the queue until such a worker starts');
    // No VM step: no VM platform needed, whatever the image's architecture.
    expect(await whyNoWorkerServes(r, spec({ architecture: 'arm64' }))).toBeNull();
  });
  await withWorker(
    {
      platforms: [
        { platform: 'linux/amd64', accel: 'tcg' },
        { platform: 'linux/arm64', accel: 'tcg' },
      ],
    },
    async (r) => {
      expect(await whyNoWorkerServes(r, spec({ architecture: 'arm64', runAsRoot: 'true' }))).toBeNull();
      expect(await whyNoWorkerServes(r, spec({ architecture: 'arm64', runAsRoot: 'true', memorySize: 1500 }))).toMatch(/^no live worker runs VMs of 2048 MiB/);
      const both = { ...spec({ architecture: 'amd64', runAsRoot: 'true' }), platforms: ['linux/amd64', 'linux/arm64'] };
      expect(await whyNoWorkerServes(r, both)).toBeNull();
    },
  );
  await withWorker({}, async (r) => {
    expect(await whyNoWorkerServes(r, spec({ runAsRoot: 'true', memorySize: 1024 }))).toBeNull();
    expect(await whyNoWorkerServes(r, spec({ runAsRoot: 'true', memorySize: 1500 }))).toMatch(/^no live worker runs VMs of 2048 MiB .*largest allowed now is 1024 MiB/);
  });
});
