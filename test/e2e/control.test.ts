/** Priorities, the global build time limit, and a worker's graceful stop, against the real service. */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startService, submitBuild, waitForBuild, type BuildView, type Service } from '../support/service.ts';
import { until } from '../support/wait.ts';

let service: Service;

beforeAll(async () => {
  service = await startService({ BALER_BUILD_TIMEOUT_S: '20', BALER_SHUTDOWN_GRACE_MS: '1000', BALER_JOB_LOCK_MS: '3000', BALER_STALLED_CHECK_MS: '1000' });
}, 60_000);

afterAll(async () => service?.stop(), 60_000);

const getBuild = async (id: string) => (await (await fetch(`${service.url}/v1/builds/${id}`)).json()) as BuildView & { startedAt: string };

it('takes queued builds by priority, then in submission order', async () => {
  const busy = await submitBuild(service, { name: 'control/busy', runAsRoot: 'sleep 3' });
  await until(async () => (await getBuild(busy)).status === 'running', 30_000);
  const low = await submitBuild(service, { name: 'control/low', priority: 500, contents: [{ text: 'l', to: '/l' }] });
  const normal = await submitBuild(service, { name: 'control/normal', contents: [{ text: 'n', to: '/n' }] });
  const high = await submitBuild(service, { name: 'control/high', priority: 1, contents: [{ text: 'h', to: '/h' }] });
  for (const id of [busy, low, normal, high]) expect((await waitForBuild(service, id)).status).toBe('succeeded');
  const started = await Promise.all([high, normal, low].map(async (id) => Date.parse((await getBuild(id)).startedAt)));
  expect(started).toEqual([...started].sort((a, b) => a - b));
}, 120_000);

it('fails a build over the global wall-clock limit as timed out, and frees its worker', async () => {
  const started = Date.now();
  const id = await submitBuild(service, { name: 'control/slow', runAsRoot: 'sleep 600', timeout: 600 });
  const build = await waitForBuild(service, id, 60_000);
  expect(build.status).toBe('failed');
  expect(build.error?.detail).toMatch(/timed out after 20 s \(the build time limit\)/);
  expect(Date.now() - started).toBeLessThan(35_000);
  const next = await submitBuild(service, { name: 'control/next', contents: [{ text: 'x', to: '/x' }] });
  expect((await waitForBuild(service, next)).status).toBe('succeeded');
}, 90_000);

it('a worker told to stop hands a running build back after its grace period, and the build still succeeds', async () => {
  const id = await submitBuild(service, { name: 'control/handback', runAsRoot: 'echo running; sleep 4; echo done > /done' });
  await until(async () => (await (await fetch(`${service.url}/v1/builds/${id}/logs`)).text()).includes('running'), 30_000);
  const worker = await service.workerPid();
  process.kill(worker, 'SIGTERM');
  const build = await waitForBuild(service, id, 90_000);
  expect(build.status, JSON.stringify(build.error)).toBe('succeeded');
  expect(service.output()).toMatch(/handing them back/);
  const starts = service
    .output()
    .split('\n')
    .filter((l) => l.includes(`"buildId":"${id}"`) && l.includes('"msg":"build started"'));
  const related = service
    .output()
    .split('\n')
    .filter((l) => l.includes(id) || /stopping|handing|stalled/.test(l));
  expect(starts.length, related.join('\n')).toBe(2);
}, 120_000);
