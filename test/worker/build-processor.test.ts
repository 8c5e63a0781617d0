/**
 * The build processor against real Redis (records, logs, the cancel channel) and a real
 * filesystem store. The VM is a stand-in that runs until its signal aborts: what is tested is
 * whether a cancel reaches the running build, not QEMU (test/vm covers that).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DelayedError, UnrecoverableError, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { SigningKey } from '../../src/attest/signing/signing-key.ts';
import { TenantQuota } from '../../src/auth/tenant-quota.ts';
import { BuildLogs } from '../../src/builds/build-log.ts';
import { createBuildProcessor } from '../../src/worker/build-processor.ts';
import { BuildRepository } from '../../src/builds/build-repository.ts';
import { CancelListener, publishCancel } from '../../src/builds/cancellation.ts';
import { resolveSpec } from '../../src/builds/spec.ts';
import { createLogger } from '../../src/log.ts';
import type { BuildJobData } from '../../src/queue/build-queue.ts';
import { connectRedis } from '../../src/redis.ts';
import { startPrivateRedis, type PrivateRedis } from '../../src/redis-server.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';
import { VmHostBusyError } from '../../src/vm/errors.ts';
import { VmCancelledError, type VmRunner } from '../../src/vm/vm-runner.ts';

let dir: string;
let server: PrivateRedis;
let redis: Redis;
let subscriber: Redis;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'baler-processor-'));
  server = await startPrivateRedis(join(dir, 'redis'));
  redis = connectRedis(server.url, { forWorker: true });
  subscriber = connectRedis(server.url, { forWorker: true });
});

afterAll(async () => {
  redis?.disconnect();
  subscriber?.disconnect();
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** Storage no build here comes near. */
const roomyQuota = () => new TenantQuota(redis, { maxStoredBytes: 1024 ** 3, chunkBytes: 1024 ** 2, reservationTtlMs: 60_000 });

/** A VM step that never ends by itself: only its signal ends it. */
const vmUntilAborted: VmRunner = {
  run: (job) =>
    new Promise((_resolve, reject) => {
      job.signal?.addEventListener('abort', () => reject(new VmCancelledError()), { once: true });
    }),
};

it('a cancel sent right after the worker claimed the build still stops it', async () => {
  const builds = new BuildRepository(redis);
  const id = 'aaaaaaaaaaaaaaaaaaaaaaaaaa';
  const spec = resolveSpec({ name: 'cancel-race', runAsRoot: 'sleep 600' } as Parameters<typeof resolveSpec>[0], new Date(0));
  await builds.create({ id, status: 'queued', spec, createdAt: new Date(0).toISOString() });
  // The API's cancel lands between the claim and what follows it, as it can under load: the
  // record says cancelled, and the message is out before the processor goes on.
  const racing = Object.create(builds) as BuildRepository;
  let claims = 0;
  racing.transition = async (...args) => {
    const applied = await builds.transition(...args);
    if (args[2].status === 'running' && applied === true && claims++ === 0) {
      await builds.transition(id, ['queued', 'running'], { status: 'cancelled' });
      await publishCancel(redis, id);
      await new Promise((r) => setTimeout(r, 200));
    }
    return applied;
  };
  const cancellations = await CancelListener.start(subscriber);
  const processor = createBuildProcessor({
    store: await FsBlobStore.create(join(dir, 'store')),
    quota: roomyQuota(),
    builds: racing,
    logs: new BuildLogs(redis, 1024 ** 2),
    vm: vmUntilAborted,
    logger: createLogger('test', 'silent'),
    allowDevices: false,
    cancellations,
  });
  const job = { id, data: { buildId: id, spec } satisfies BuildJobData, attemptsMade: 0, opts: { attempts: 3 }, timestamp: Date.now() } as unknown as Job<BuildJobData>;
  await expect(processor(job, 'token')).rejects.toBeInstanceOf(UnrecoverableError);
  expect((await builds.get(id))?.status).toBe('cancelled');
  await cancellations.close();
}, 10_000);

it('a worker without disk room for the VM step puts the build back in the queue, waiting, saying why; it is no attempt and the next start clears the why', async () => {
  const builds = new BuildRepository(redis);
  const logs = new BuildLogs(redis, 1024 ** 2);
  const id = 'bbbbbbbbbbbbbbbbbbbbbbbbbb';
  const spec = resolveSpec({ name: 'host-busy', runAsRoot: 'true' } as Parameters<typeof resolveSpec>[0], new Date(0));
  await builds.create({ id, status: 'queued', spec, createdAt: new Date(0).toISOString() });
  const reason = "this VM step may take up to 3137 MiB of the worker's disk (…): waiting for room";
  let runs = 0;
  const vm: VmRunner = {
    run: async () => {
      runs++;
      throw new VmHostBusyError(reason);
    },
  };
  const processor = createBuildProcessor({
    store: await FsBlobStore.create(join(dir, 'store-busy')),
    quota: roomyQuota(),
    builds,
    logs,
    vm,
    logger: createLogger('test', 'silent'),
    allowDevices: false,
  });
  const delayed: number[] = [];
  const job = {
    id,
    data: { buildId: id, spec } satisfies BuildJobData,
    attemptsMade: 0,
    opts: { attempts: 3 },
    timestamp: Date.now(),
    moveToDelayed: async (at: number) => void delayed.push(at - Date.now()),
  } as unknown as Job<BuildJobData>;

  await expect(processor(job, 'token')).rejects.toBeInstanceOf(DelayedError);
  expect(runs).toBe(1);
  expect(delayed).toHaveLength(1);
  expect(delayed[0]).toBeGreaterThan(1000);
  const waiting = await builds.get(id);
  expect(waiting).toMatchObject({ status: 'queued', waiting: reason, attempt: 1 });
  expect(waiting?.error).toBeUndefined();
  expect(await logs.read(id)).toBe(`baler: ${reason}\n`);

  // Taken up again: running, and what it waited for is gone from the record.
  await builds.transition(id, ['queued'], { status: 'running', attempt: 1 });
  expect(await builds.get(id)).not.toHaveProperty('waiting');
});

it('records what it attested on a succeeded build, and an attestation that fails on the image, never failing the build', async () => {
  const builds = new BuildRepository(redis);
  const store = await FsBlobStore.create(join(dir, 'store-attest'));
  const attest = { builderId: 'urn:test', balerVersion: '0.0.0-test', worker: 'w1' };
  const run = async (id: string, signingKey?: SigningKey) => {
    const spec = resolveSpec({ name: `attest-${id.slice(0, 1)}`, contents: [{ text: 'x', to: '/x' }] }, new Date(0));
    await builds.create({ id, status: 'queued', spec, createdAt: new Date(0).toISOString() });
    const processor = createBuildProcessor({
      store,
      quota: roomyQuota(),
      builds,
      logs: new BuildLogs(redis, 1024 ** 2),
      vm: vmUntilAborted,
      logger: createLogger('test', 'silent'),
      allowDevices: false,
      attest: { ...attest, signingKey },
    });
    await processor({ id, data: { buildId: id, spec } satisfies BuildJobData, attemptsMade: 0, opts: { attempts: 3 }, timestamp: Date.now() } as unknown as Job<BuildJobData>, 'token');
    return builds.get(id);
  };
  const attested = await run('cccccccccccccccccccccccccc');
  expect(attested?.status).toBe('succeeded');
  expect(attested?.result?.attestations).toEqual({ sbomSpdx: expect.stringMatching(/^sha256:/), sbomCycloneDx: expect.stringMatching(/^sha256:/), provenance: expect.stringMatching(/^sha256:/) });
  for (const digest of Object.values(attested?.result?.attestations ?? {})) expect(await store.stat(digest)).not.toBeNull();

  const broken: SigningKey = {
    keyId: 'k',
    publicKeyPem: '',
    algorithm: 'ed25519',
    sign: () => {
      throw new Error('the HSM is gone');
    },
  };
  const failed = await run('dddddddddddddddddddddddddd', broken);
  expect(failed?.status).toBe('succeeded');
  expect(failed?.result?.attestations).toBeUndefined();
  expect(failed?.result?.attestationError).toBe('attestations could not be made: the HSM is gone');
});
