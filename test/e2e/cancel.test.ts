/** Cancelling builds through the API, against a real worker and a real VM. */
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { pidsMentioning } from '../support/run.ts';
import { startService, submitBuild, waitForBuild, type BuildView, type Service } from '../support/service.ts';
import { until } from '../support/wait.ts';

let service: Service;
let work: string;
let vmTmp: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'baler-cancel-'));
  vmTmp = join(work, 'vm-tmp');
  await mkdir(vmTmp);
  // No warm VMs: these tests check that a step's VM and files are gone afterwards, and a
  // pool keeps its next VM waiting in the same temp dir by design (test/vm covers the pool).
  service = await startService({ BALER_VM_TMPDIR: vmTmp, BALER_VM_POOL: '0' });
}, 60_000);

afterAll(async () => {
  await service?.stop();
  await rm(work, { recursive: true, force: true });
});

const getBuild = async (id: string) => (await (await fetch(`${service.url}/v1/builds/${id}`)).json()) as BuildView & { startedAt?: string };
const cancel = (id: string, how: 'DELETE' | 'POST' = 'DELETE') => fetch(`${service.url}/v1/builds/${id}${how === 'POST' ? '/cancel' : ''}`, { method: how });

it('a queued build never starts; a running one stops within seconds with its VM killed; a finished one is 409', async () => {
  const running = await submitBuild(service, { name: 'cancel/running', runAsRoot: 'echo started; sleep 600', timeout: 600 });
  await until(async () => (await (await fetch(`${service.url}/v1/builds/${running}/logs`)).text()).includes('started'), 60_000);
  expect(pidsMentioning(vmTmp).length).toBeGreaterThan(0); // the VM is up

  // The only worker is busy: this one waits in the queue.
  const queued = await submitBuild(service, { name: 'cancel/queued', contents: [{ text: 'x', to: '/x' }] });
  expect((await getBuild(queued)).status).toBe('queued');
  const cancelQueued = await cancel(queued, 'POST');
  expect(cancelQueued.status).toBe(200);
  expect(((await cancelQueued.json()) as BuildView).status).toBe('cancelled');

  const started = Date.now();
  const cancelRunning = await cancel(running);
  expect(cancelRunning.status).toBe(200);
  expect(((await cancelRunning.json()) as BuildView).status).toBe('cancelled');
  await until(async () => pidsMentioning(vmTmp).length === 0 && (await readdir(vmTmp)).length === 0, 15_000);
  expect(Date.now() - started).toBeLessThan(15_000);
  expect(service.output()).toMatch(new RegExp(`"buildId":"${running}"[^\\n]*"msg":"build cancelled"`));

  // The worker is free again and takes new work, but never the cancelled one.
  const after = await submitBuild(service, { name: 'cancel/after', contents: [{ text: 'y', to: '/y' }] });
  expect((await waitForBuild(service, after)).status).toBe('succeeded');
  const queuedNow = await getBuild(queued);
  expect(queuedNow.status).toBe('cancelled');
  expect(queuedNow.startedAt).toBeUndefined();
  expect((await getBuild(running)).status).toBe('cancelled');

  for (const id of [running, after]) {
    const again = await cancel(id);
    expect(again.status).toBe(409);
    expect(again.headers.get('content-type')).toMatch(/problem\+json/);
  }
  expect((await cancel('aaaaaaaaaaaaaaaaaaaaaaaaaa')).status).toBe(404);
}, 180_000);
