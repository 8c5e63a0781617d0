/**
 * recordVerification against real Redis and a real filesystem store: what it records on the
 * original for a rebuild that differs, one that is identical, and one that failed.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { recordVerification } from '../../src/attest/verification/record-verification.ts';
import type { BuildRecord } from '../../src/builds/build-record.ts';
import { BuildRepository } from '../../src/builds/build-repository.ts';
import type { BuildResult } from '../../src/builds/build-result.ts';
import { resolveSpec } from '../../src/builds/spec.ts';
import { type Digest, digestOf } from '../../src/digest.ts';
import { createLogger } from '../../src/log.ts';
import { connectRedis } from '../../src/redis.ts';
import { startPrivateRedis, type PrivateRedis } from '../../src/redis-server.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';
import { END_OF_ARCHIVE, entry } from '../support/raw-tar.ts';

let dir: string;
let server: PrivateRedis;
let redis: Redis;
let store: FsBlobStore;
let builds: BuildRepository;
const logger = createLogger('test', process.env.DEBUG_VERIFY ? 'debug' : 'silent');
const spec = resolveSpec({ name: 'verified', tag: '1' }, new Date(0));

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'baler-record-verification-'));
  server = await startPrivateRedis(join(dir, 'redis'));
  redis = connectRedis(server.url, { forWorker: true });
  store = await FsBlobStore.create(join(dir, 'store'));
  builds = new BuildRepository(redis);
});

afterAll(async () => {
  redis?.disconnect();
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function layer(files: Record<string, string>): Promise<Digest> {
  const tar = Buffer.concat([...Object.entries(files).map(([name, data]) => entry({ name, size: data.length }, Buffer.from(data))), END_OF_ARCHIVE]);
  return (await store.put(Readable.from([tar]))).digest;
}

function result(diffIds: Digest[], tag: string): BuildResult {
  const archive = digestOf(`archive ${tag}`);
  return {
    imageId: digestOf(`config ${tag}`),
    diffIds,
    layers: [],
    archive: { digest: archive, size: 1, mediaType: 'application/x-tar', format: 'docker-archive', compression: 'none', filename: 'x.tar' },
  };
}

let n = 0;
async function records(original: BuildResult, rebuild: Partial<BuildRecord>): Promise<{ originalId: string; rebuild: BuildRecord }> {
  const id = (k: string) => `${k}${String(n).padStart(25, '0')}`.slice(0, 26);
  n++;
  const originalId = id('a');
  const at = new Date(0).toISOString();
  await builds.create({ id: originalId, status: 'succeeded', spec, createdAt: at, result: original, worker: 'host-a:1:aaaaaa', reproducible: true });
  const record: BuildRecord = { id: id('b'), status: 'succeeded', spec, createdAt: at, verifies: originalId, worker: 'host-a:1:aaaaaa', ...rebuild };
  await builds.create(record);
  return { originalId, rebuild: record };
}

it('a rebuild whose second layer differs: that layer and its first differing path, no verdict of true, a statement stored', async () => {
  const base = await layer({ 'etc/os': 'x' });
  const original = result([base, await layer({ 'out/a': 'same', 'out/random': 'aaaa' })], 'one');
  const rebuilt = result([base, await layer({ 'out/a': 'same', 'out/random': 'bbbb' })], 'two');
  const { originalId, rebuild } = await records(original, { result: rebuilt });
  await recordVerification(rebuild, { store, builds, logger });
  const record = await builds.get(originalId);
  expect(record?.reproducible).toBe(false);
  expect(record?.verification).toMatchObject({
    buildId: rebuild.id,
    reproducible: false,
    layers: [
      { index: 0, match: true },
      { index: 1, match: false, diffId: original.diffIds[1], rebuiltDiffId: rebuilt.diffIds[1] },
    ],
    config: { match: false },
    archive: { match: false },
    firstDifference: { layer: 1, path: '/out/random', what: 'content' },
    workers: { original: 'host-a:1:aaaaaa', rebuilt: 'host-a:1:aaaaaa', different: false },
  });
  // Unsigned without a key, and kept: the statement says the same.
  const envelope = JSON.parse((await buffer(await store.open(record?.verification?.statement as Digest))).toString()) as { payload: string; signatures: unknown[] };
  expect(envelope.signatures).toEqual([]);
  const statement = JSON.parse(Buffer.from(envelope.payload, 'base64').toString());
  expect(statement.predicate.firstDifference).toEqual({ layer: 1, path: '/out/random', what: 'content' });
  expect(statement.subject[0].digest.sha256).toBe(original.imageId.slice(7));
});

it('a rebuild with a layer fewer: the missing layer, no path', async () => {
  const base = await layer({ 'etc/os': 'x' });
  const original = result([base, await layer({ extra: 'x' })], 'three');
  const { originalId, rebuild } = await records(original, { result: { ...original, diffIds: [base] } });
  await recordVerification(rebuild, { store, builds, logger });
  expect((await builds.get(originalId))?.verification?.firstDifference).toEqual({ layer: 1, what: 'missing' });
});

it('an identical rebuild: reproducible', async () => {
  const original = result([await layer({ same: 'x' })], 'four');
  const { originalId, rebuild } = await records(original, { result: original, worker: 'host-b:2:bbbbbb' });
  await recordVerification(rebuild, { store, builds, logger });
  const record = await builds.get(originalId);
  expect(record?.reproducible).toBe(true);
  expect(record?.verification?.firstDifference).toBeUndefined();
  expect(record?.verification?.workers?.different).toBe(true);
});

it('a failed rebuild: the error, and no reproducible (an earlier verdict is taken back)', async () => {
  const original = result([await layer({ same: 'x' })], 'five');
  const error = { type: 'about:blank', title: 'Build failed', status: 422, detail: 'runAsRoot exited with status 1' };
  const { originalId, rebuild } = await records(original, { status: 'failed', error });
  await recordVerification(rebuild, { store, builds, logger });
  const record = await builds.get(originalId);
  expect(record?.reproducible).toBeUndefined();
  expect(record?.verification).toMatchObject({ buildId: rebuild.id, error: 'the verification build failed: runAsRoot exited with status 1' });
  expect(record?.verification?.reproducible).toBeUndefined();
  expect(record?.verification?.statement).toBeUndefined();
});

it('an original answered from the build cache: the worker of the build it names', async () => {
  const original = result([await layer({ cached: 'x' })], 'six');
  const source = await records(original, { result: original });
  await builds.update(source.originalId, { worker: 'host-c:3:cccccc' });
  const { originalId, rebuild } = await records(original, { result: original, worker: 'host-c:3:cccccc' });
  await builds.replace(originalId, { cached: true, cachedFrom: source.originalId }, ['worker']);
  await recordVerification(rebuild, { store, builds, logger });
  expect((await builds.get(originalId))?.verification?.workers).toEqual({ original: 'host-c:3:cccccc', rebuilt: 'host-c:3:cccccc', different: false });
});
