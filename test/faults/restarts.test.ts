/**
 * Redis restarted with builds queued and running, and the API process killed while clients
 * poll and download: no build is lost, downloads resume with Range.
 */
import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startService, submitBuild, uploadFile, waitForBuild, type BuildView, type Service } from '../support/service.ts';
import { until } from '../support/wait.ts';

let service: Service;
beforeAll(async () => {
  service = await startService({ BALER_JOB_LOCK_MS: '4000', BALER_STALLED_CHECK_MS: '2000' });
}, 60_000);
afterAll(async () => service?.stop(), 60_000);

const statusOf = async (id: string) => ((await (await fetch(`${service.url}/v1/builds/${id}`)).json()) as BuildView).status;

it('Redis restarted with builds queued and running: none lost, all end succeeded', async () => {
  const running = await submitBuild(service, { name: 'restart/running', runAsRoot: 'sleep 5; echo done > /done' });
  await until(async () => (await statusOf(running)) === 'running', 30_000);
  const queued: string[] = [];
  for (let i = 0; i < 5; i++) queued.push(await submitBuild(service, { name: 'restart/queued', tag: `t${i}`, contents: [{ text: String(i), to: '/n' }] }));

  await service.restartRedis(async () => {
    // While Redis is down the API says so: 503, not a 500 or a hang.
    const res = await fetch(`${service.url}/v1/builds/${running}`);
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('5');
  });

  for (const id of [running, ...queued]) {
    const build = await waitForBuild(service, id, 120_000);
    expect(build.status, `${id}: ${JSON.stringify(build.error)}`).toBe('succeeded');
  }
}, 180_000);

it('the API process killed while a client downloads: the download resumes with Range after restart', async () => {
  const id = await submitBuild(service, { name: 'restart/download', compression: 'none', contents: [{ text: 'x'.repeat(900_000), to: '/big' }] });
  const build = await waitForBuild(service, id);
  expect(build.status).toBe('succeeded');
  const size = build.result?.archive.size as number;
  const half = Math.floor(size / 2);
  const first = await fetch(`${service.url}/v1/builds/${id}/image`, { headers: { range: `bytes=0-${half - 1}` } });
  expect(first.status).toBe(206);
  const head = Buffer.from(await first.arrayBuffer());
  const etag = first.headers.get('etag') as string;

  await service.restartApi();

  const rest = await fetch(`${service.url}/v1/builds/${id}/image`, { headers: { range: `bytes=${half}-`, 'if-range': etag } });
  expect(rest.status).toBe(206);
  const whole = Buffer.concat([head, Buffer.from(await rest.arrayBuffer())]);
  expect(`sha256:${createHash('sha256').update(whole).digest('hex')}`).toBe(build.result?.archive.digest);
  // Polling goes on where it left off.
  expect(await statusOf(id)).toBe('succeeded');
}, 120_000);

it('SIGTERM to the API: it stops accepting, but an in-flight download finishes whole', async () => {
  const file = join(tmpdir(), `inflight-${process.pid}`);
  await writeFile(file, randomBytes(24 * 1024 * 1024));
  const id = await submitBuild(service, { name: 'restart/inflight', compression: 'none', contents: [{ file: await uploadFile(service, file), to: '/big' }] });
  const build = await waitForBuild(service, id);
  expect(build.status).toBe('succeeded');

  const res = await fetch(`${service.url}/v1/builds/${id}/image`);
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const hash = createHash('sha256');
  const first = await reader.read();
  hash.update(first.value as Uint8Array);
  process.kill(service.apiPid, 'SIGTERM');
  await new Promise((r) => setTimeout(r, 300));
  // New requests are refused while the download goes on.
  expect(
    await fetch(`${service.url}/healthz`).then(
      () => 'answered',
      () => 'refused',
    ),
  ).toBe('refused');
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    hash.update(value);
  }
  expect(`sha256:${hash.digest('hex')}`).toBe(build.result?.archive.digest);
}, 120_000);
