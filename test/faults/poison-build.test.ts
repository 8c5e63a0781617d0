/**
 * A build whose worker process dies while running it — here `kill -9` by the test, standing in
 * for the kernel's OOM killer or a crash in native code — is run once more; when that worker
 * dies too, the build ends `failed` ("stopped its worker twice") and no third worker runs it.
 * The worker started after the second death stays up and builds the next build.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startService, submitBuild, waitForBuild, type Service } from '../support/service.ts';
import { until } from '../support/wait.ts';

let service: Service;

beforeAll(async () => {
  // Short locks: a dead worker's build is taken up again within seconds.
  service = await startService({ BALER_VM_POOL: '0', BALER_JOB_LOCK_MS: '3000', BALER_STALLED_CHECK_MS: '1000' });
}, 120_000);

afterAll(async () => {
  await service?.stop();
});

const startsOf = (id: string) => service.output().split('\n').filter((l) => l.includes(`"buildId":"${id}"`) && l.includes('"msg":"build started"')).length;

it('fails a build that stopped its worker twice, and never hands it to a third', async () => {
  const id = await submitBuild(service, { name: 'faults/poison', runAsRoot: 'sleep 600' });
  const killed: number[] = [];
  for (let death = 1; death <= 2; death++) {
    await until(async () => startsOf(id) === death, 90_000);
    const pid = await service.workerPid();
    process.kill(pid, 'SIGKILL');
    killed.push(pid);
    // `npm start` brings a new worker up a second later.
    await until(async () => !killed.includes(await service.workerPid().catch(() => killed[0] as number)), 60_000);
  }
  const build = await waitForBuild(service, id, 90_000);
  expect(build.status).toBe('failed');
  expect(build.error?.status).toBe(422);
  expect(build.error?.detail).toMatch(/stopped its worker twice/);
  expect(startsOf(id)).toBe(2);
  expect(service.output()).toMatch(new RegExp(`"buildId":"${id}".*"msg":"build failed: it stopped its worker twice"`));

  // The third worker lives on and builds.
  const survivor = await service.workerPid();
  const next = await waitForBuild(service, await submitBuild(service, { name: 'faults/after-poison', contents: [{ text: 'ok\n', to: '/ok' }] }), 30_000);
  expect(next.status).toBe('succeeded');
  expect(await service.workerPid()).toBe(survivor);
}, 400_000);
