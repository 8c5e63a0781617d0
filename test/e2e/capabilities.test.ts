/**
 * Worker capabilities: a worker whose largest VM is 1024 MiB does not take a build whose VM
 * step needs 2048 MiB (it stays queued, and says why, while smaller builds pass it by); a
 * second worker that allows 2048 MiB joins and takes it. An arm64 build waits while no worker
 * serves linux/arm64 (these serve linux/amd64 alone). Real service, real workers, real VM.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startService, submitBuild, waitForBuild, type Service } from '../support/service.ts';
import { until } from '../support/wait.ts';

const WORKER = fileURLToPath(new URL('../../workers/build-worker.ts', import.meta.url));

interface WorkerView {
  id: string;
  accel: string;
  maxVmMemoryMiB: number;
  queues: string[];
}

let service: Service;
let big: ChildProcess | undefined;
let bigOutput = '';

beforeAll(async () => {
  // linux/amd64 alone: the queues it names are its memory tiers' (an emulated platform's would add its own).
  service = await startService({ BALER_WORKER_MAX_VM_MEMORY_MIB: '1024', BALER_VM_POOL: '0', BALER_VM_PLATFORMS: 'linux/amd64' });
}, 120_000);

afterAll(async () => {
  if (big && big.exitCode === null) {
    const exited = new Promise((r) => big?.once('exit', r));
    big.kill('SIGTERM');
    await exited;
  }
  await service?.stop();
});

const workers = async () => ((await (await fetch(`${service.url}/v1/workers`)).json()) as { workers: WorkerView[] }).workers;
const statusOf = async (id: string) => ((await (await fetch(`${service.url}/v1/builds/${id}`)).json()) as { status: string }).status;

it('a build needing a bigger VM than a worker allows waits for a worker that allows it', async () => {
  const [small] = await workers();
  expect(small).toMatchObject({ maxVmMemoryMiB: 1024, platform: 'linux/amd64', platforms: [{ platform: 'linux/amd64' }], queues: ['baler-builds-mem1024', 'baler-builds'] });
  expect(['kvm', 'tcg']).toContain(small?.accel);

  const res = await fetch(`${service.url}/v1/builds`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'caps/big', memorySize: 1500, runAsRoot: 'echo big > /big' }),
  });
  expect(res.status).toBe(202);
  const accepted = (await res.json()) as { id: string; waiting?: string };
  expect(accepted.waiting).toMatch(/2048 MiB.*largest allowed now is 1024 MiB/);
  expect(await (await fetch(`${service.url}/v1/builds/${accepted.id}/logs`)).text()).toContain('2048 MiB');

  // Submitted later, built first: the worker passes the big build by.
  const after = await submitBuild(service, { name: 'caps/small', runAsRoot: 'echo small > /small' }, { noCache: true });
  expect((await waitForBuild(service, after)).status).toBe('succeeded');
  expect(await statusOf(accepted.id)).toBe('queued');
  const startedBySmall = () => new RegExp(`"buildId":"${accepted.id}"[^\\n]*"msg":"build started"`).test(service.output());
  expect(startedBySmall()).toBe(false);

  // A worker that allows 2048 MiB joins, and takes it.
  big = spawn(process.execPath, ['--import', 'tsx', WORKER], {
    env: { ...process.env, REDIS_URL: service.redisUrl, DATA_DIR: service.storeDir, BALER_WORKER_MAX_VM_MEMORY_MIB: '2048', BALER_VM_POOL: '0', BALER_VM_PLATFORMS: 'linux/amd64' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  big.stdout?.on('data', (d: Buffer) => (bigOutput += d.toString()));
  big.stderr?.on('data', (d: Buffer) => (bigOutput += d.toString()));
  await until(async () => (await workers()).length === 2, 120_000);
  const built = await waitForBuild(service, accepted.id, 300_000);
  expect(built.status, JSON.stringify(built.error)).toBe('succeeded');
  expect(bigOutput).toMatch(new RegExp(`"buildId":"${accepted.id}"[^\\n]*"msg":"build started"`));
  expect(startedBySmall()).toBe(false);
}, 600_000);

it('an arm64 build waits, saying why, while no live worker serves linux/arm64; an arm64 image without scripts needs none', async () => {
  const res = await fetch(`${service.url}/v1/builds`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'caps/arm64', architecture: 'arm64', runAsRoot: 'true' }),
  });
  expect(res.status).toBe(202);
  const accepted = (await res.json()) as { id: string; waiting?: string };
  expect(accepted.waiting).toBe('no live worker runs linux/arm64 VMs (the workers run linux/amd64); the build waits in the queue until such a worker starts');
  expect(await statusOf(accepted.id)).toBe('queued');
  // Only a label without scripts: any worker builds it.
  const label = await submitBuild(service, { name: 'caps/arm64-label', architecture: 'arm64', contents: [{ text: 'x', to: '/x' }] }, { noCache: true });
  expect((await waitForBuild(service, label)).status).toBe('succeeded');
  expect(await statusOf(accepted.id)).toBe('queued');
  expect((await fetch(`${service.url}/v1/builds/${accepted.id}`, { method: 'DELETE' })).status).toBeLessThan(300);
}, 300_000);
