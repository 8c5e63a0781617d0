/**
 * Retention and garbage collection, with short periods: finished builds expire, blobs no build
 * needs are deleted after the grace period, and a running build's blobs are never touched.
 */
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startService, submitBuild, uploadFile, waitForBuild, type Service } from '../support/service.ts';

let service: Service;
beforeAll(async () => {
  service = await startService({ BALER_RETENTION_S: '3', BALER_GC_GRACE_S: '2', BALER_GC_INTERVAL_S: '1' });
}, 60_000);
afterAll(async () => service?.stop(), 60_000);

const blobPath = (digest: string) => join(service.dataDir, 'store', 'blobs', 'sha256', digest.slice(7));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

it('expires finished builds and collects what nothing needs, never what a running build uses', async () => {
  const file = join(tmpdir(), `retention-${process.pid}`);
  await writeFile(file, 'used by the first build');
  const used = await uploadFile(service, file);
  await writeFile(file, 'never used');
  const unused = await uploadFile(service, file);
  const first = await waitForBuild(service, await submitBuild(service, { name: 'gc/first', contents: [{ file: used, to: '/f' }] }));
  expect(first.status).toBe('succeeded');
  // The archive is assembled from these (layers, config, gzip pieces); none is kept once the build expires.
  expect(first.result?.archive.parts?.length).toBeGreaterThan(0);
  const parts = [...(first.result?.archive.parts ?? []), ...(first.result?.diffIds ?? []), first.result?.imageId as string];

  // A long build whose input is older than the grace period by the time collection runs.
  await writeFile(file, 'used by the long build');
  const input = await uploadFile(service, file);
  const long = await submitBuild(service, { name: 'gc/long', contents: [{ file: input, to: '/in' }], runAsRoot: 'sleep 6; cat /in > /out' });

  await sleep(5000);
  // The first build expired (3 s after it finished) and its blobs went with it (2 s grace).
  expect((await fetch(`${service.url}/v1/builds/${first.id}`)).status).toBe(404);
  for (const part of parts) expect(existsSync(blobPath(part)), part).toBe(false);
  expect(existsSync(blobPath(used))).toBe(false);
  expect(existsSync(blobPath(unused))).toBe(false);
  // The running build's input is still there, and the build succeeds.
  expect(existsSync(blobPath(input))).toBe(true);
  const done = await waitForBuild(service, long, 60_000);
  expect(done.status, JSON.stringify(done.error)).toBe('succeeded');
  expect(service.output()).toMatch(/"msg":"garbage collected"/);
}, 120_000);
