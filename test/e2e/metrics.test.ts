/**
 * `/metrics` end to end: the real service (the API, and its worker process serving its own
 * `/metrics`), real builds in a real QEMU VM, both endpoints parsed with the Prometheus
 * project's parser, and every metric the issue names seen moving: a pure build, a cached
 * resubmission, a layer-cache hit, an import (then an import-cache hit), a failing build, a
 * cold and a warm VM, queued and running builds, cancellations. A second service whose VM
 * kernel QEMU refuses to load shows VM boot failures, cold and warm.
 */
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureVmAssets } from '../../src/vm/assets/vm-assets.ts';
import { freePort } from '../../src/redis-server.ts';
import { scrape, type Scrape } from '../support/prometheus.ts';
import { downloadImage, startService, submitBuild, uploadFile, waitForBuild, type BuildView, type Service } from '../support/service.ts';
import { until } from '../support/wait.ts';

let work: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'baler-metrics-'));
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** A service whose worker serves `/metrics` too; the store is walked on every scrape. */
async function startMetered(env: Record<string, string> = {}): Promise<{ service: Service; workerMetrics: string }> {
  const port = await freePort();
  const service = await startService({ BALER_WORKER_METRICS_PORT: String(port), BALER_METRICS_STORE_SCAN_S: '0', ...env });
  return { service, workerMetrics: `http://127.0.0.1:${port}/metrics` };
}

const cancel = (service: Service, id: string) => fetch(`${service.url}/v1/builds/${id}`, { method: 'DELETE' });

describe('a service with builds of every kind', () => {
  let service: Service;
  let workerMetrics: string;
  const ids: string[] = [];
  let api0: Scrape;
  let worker0: Scrape;
  let api1: Scrape;
  let worker1: Scrape;
  const run = async (spec: unknown, expected: string): Promise<BuildView> => {
    const id = await submitBuild(service, spec);
    ids.push(id);
    const build = await waitForBuild(service, id, 300_000);
    expect(build.status, JSON.stringify(build.error)).toBe(expected);
    return build;
  };

  beforeAll(async () => {
    ({ service, workerMetrics } = await startMetered());
    // The pool's first warm VM has booted (a boot counts when QEMU starts).
    await until(async () => (await scrape(workerMetrics)).value('baler_vm_boots_total', { kind: 'warm' }) >= 1, 60_000);
    api0 = await scrape(`${service.url}/metrics`);
    worker0 = await scrape(workerMetrics);
    const tag = randomBytes(4).toString('hex');

    // Pure: contents only, no VM.
    const pure = { name: 'metrics/pure', tag, compression: 'none', contents: [{ text: 'hello\n', to: '/etc/hello' }] };
    const built = await run(pure, 'succeeded');
    // The same spec again: the API answers from the build cache.
    const again = await submitBuild(service, pure);
    ids.push(again);
    expect((await waitForBuild(service, again)).status).toBe('succeeded');
    // Another tag, the same contents: a new build whose layer comes from the layer cache.
    await run({ ...pure, tag: `${tag}-b` }, 'succeeded');
    // A path with `..` fails the build (on the worker, as input error).
    await run({ name: 'metrics/failing', tag, contents: [{ text: 'x', to: 'a/../../escape' }] }, 'failed');
    // An uploaded image as base: imported once, then taken from the import cache.
    const archive = join(work, 'pure.tar');
    await downloadImage(service, built.id, archive);
    const blob = await uploadFile(service, archive);
    await run({ name: 'metrics/imported', tag, fromImage: { blob }, contents: [{ text: '1', to: '/one' }] }, 'succeeded');
    await run({ name: 'metrics/imported', tag: `${tag}-b`, fromImage: { blob }, contents: [{ text: '2', to: '/two' }] }, 'succeeded');
    // A cold VM: a memory size the warm pool's VMs do not have.
    await run({ name: 'metrics/cold-vm', tag, memorySize: 256, runAsRoot: 'echo cold > /cold' }, 'succeeded');
    api1 = await scrape(`${service.url}/metrics`);
    worker1 = await scrape(workerMetrics);
  }, 600_000);

  afterAll(async () => {
    await service?.stop();
  });

  it('serves Prometheus text format on both, with the default process metrics and baler_ on ours', () => {
    for (const s of [api1, worker1]) {
      expect(s.value('process_cpu_seconds_total')).toBeGreaterThan(0);
      expect(s.value('nodejs_heap_size_used_bytes')).toBeGreaterThan(0);
      for (const family of s.families) {
        expect(family.name).toMatch(/^(baler|process|nodejs)_/);
        expect(family.help).not.toBe('');
      }
    }
  });

  it('counts HTTP requests by route pattern, method and status, never by raw URL', () => {
    const post = (status: string) => ({ route: '/v1/builds', method: 'POST', status_code: status });
    expect(api1.value('baler_http_request_duration_seconds_count', post('202')) - api0.value('baler_http_request_duration_seconds_count', post('202'))).toBe(6);
    expect(api1.value('baler_http_request_duration_seconds_count', post('201')) - api0.value('baler_http_request_duration_seconds_count', post('201'))).toBe(1);
    expect(api1.value('baler_http_request_duration_seconds_count', { route: '/v1/builds/:id', method: 'GET', status_code: '200' })).toBeGreaterThan(0);
    expect(api1.value('baler_http_request_duration_seconds_bucket', { ...post('202'), le: '+Inf' })).toBe(api1.value('baler_http_request_duration_seconds_count', post('202')));
    const routes = api1.labelSets('baler_http_request_duration_seconds_count').map((l) => l.route ?? '');
    for (const id of ids) expect(routes.join(' ')).not.toContain(id);
  });

  it('counts submissions and build-cache lookups (API), and finished builds by outcome (fleet, from Redis)', () => {
    const delta = (name: string, labels: Record<string, string>) => api1.value(name, labels) - api0.value(name, labels);
    expect(delta('baler_builds_submitted_total', { cached: 'false' })).toBe(6);
    expect(delta('baler_builds_submitted_total', { cached: 'true' })).toBe(1);
    expect(delta('baler_cache_lookups_total', { cache: 'build', result: 'hit' })).toBe(1);
    expect(delta('baler_cache_lookups_total', { cache: 'build', result: 'miss' })).toBe(6);
    expect(delta('baler_builds_finished_total', { outcome: 'succeeded' })).toBe(6);
    expect(delta('baler_builds_finished_total', { outcome: 'failed' })).toBe(1);
    expect(api1.value('baler_builds', { state: 'queued' })).toBe(0);
    expect(api1.value('baler_builds', { state: 'running' })).toBe(0);
  });

  it('reports the queues from BullMQ', () => {
    const delta = (state: string) => api1.value('baler_queue_jobs', { queue: 'builds', state }) - api0.value('baler_queue_jobs', { queue: 'builds', state });
    expect(delta('completed')).toBe(5);
    expect(delta('failed')).toBe(1);
    expect(api1.labelSets('baler_queue_jobs').map((l) => l.queue)).toContain('pushes');
  });

  it('reports bytes stored (a walk of the store) and bytes written, on the API and on the worker', async () => {
    // Each scrape starts a walk and reports the previous one: the next scrape sees the builds.
    const stored = await scrape(`${service.url}/metrics`);
    expect(stored.value('baler_store_bytes')).toBeGreaterThan(api0.value('baler_store_bytes'));
    expect(stored.value('baler_store_blobs')).toBeGreaterThan(api0.value('baler_store_blobs'));
    // The upload went through the API; layers, configs and imports through the worker.
    expect(api1.value('baler_store_written_bytes_total') - api0.value('baler_store_written_bytes_total')).toBeGreaterThan(0);
    expect(worker1.value('baler_store_written_bytes_total') - worker0.value('baler_store_written_bytes_total')).toBeGreaterThan(0);
  });

  it('times builds by outcome and steps by kind (worker)', () => {
    const delta = (name: string, labels: Record<string, string>) => worker1.value(name, labels) - worker0.value(name, labels);
    expect(delta('baler_build_duration_seconds_count', { outcome: 'succeeded' })).toBe(5);
    expect(delta('baler_build_duration_seconds_count', { outcome: 'failed' })).toBe(1);
    expect(delta('baler_build_duration_seconds_sum', { outcome: 'succeeded' })).toBeGreaterThan(0);
    // Steps that ran, by the names of their events (those taken from a cache are cache lookups).
    for (const step of ['base', 'contents', 'layer', 'vm', 'archive']) {
      expect(delta('baler_build_step_duration_seconds_count', { step }), step).toBeGreaterThan(0);
    }
    // Only a VM step's duration carries its platform (the VM's: one this worker serves).
    expect(delta('baler_build_step_duration_seconds_count', { step: 'vm', platform: 'linux/amd64' })).toBeGreaterThan(0);
    const platformed = worker1.labelSets('baler_build_step_duration_seconds_count').filter((l) => l.platform !== undefined);
    expect(new Set(platformed.map((l) => l.step))).toEqual(new Set(['vm']));
  });

  it('counts layer and import cache hits and misses (worker)', () => {
    const delta = (cache: string, result: string) => worker1.value('baler_cache_lookups_total', { cache, result }) - worker0.value('baler_cache_lookups_total', { cache, result });
    expect(delta('layer', 'hit')).toBe(1);
    // Misses: the pure build, the failing one, both imports (other contents), the VM build.
    expect(delta('layer', 'miss')).toBe(5);
    expect(delta('import', 'miss')).toBe(1);
    expect(delta('import', 'hit')).toBe(1);
  });

  it('counts cold VM boots by platform (worker), with a series for each platform it serves and no other', async () => {
    const cold = { kind: 'cold', platform: 'linux/amd64' };
    expect(worker1.value('baler_vm_boots_total', cold) - worker0.value('baler_vm_boots_total', cold)).toBe(1);
    expect(worker1.value('baler_vm_boots_total', { kind: 'cold', platform: 'linux/arm64' }) - worker0.value('baler_vm_boots_total', { kind: 'cold', platform: 'linux/arm64' })).toBe(0);
    // (Not the warm ones: on a loaded host a warm VM may miss its boot deadline, a real failure.)
    expect(worker1.value('baler_vm_boot_failures_total', { kind: 'cold' })).toBe(0);
    const { workers } = (await (await fetch(`${service.url}/v1/workers`)).json()) as { workers: { platforms: { platform: string }[] }[] };
    const served = (workers[0]?.platforms ?? []).map((p) => p.platform).sort();
    expect(served).toContain('linux/amd64');
    for (const name of ['baler_vm_boots_total', 'baler_vm_boot_failures_total']) {
      expect([...new Set(worker1.labelSets(name).map((l) => l.platform))].sort(), name).toEqual(served);
    }
  });

  it('shows builds running and queued (fleet, from Redis and BullMQ), warm VMs booting, cancellations', async () => {
    const before = await scrape(`${service.url}/metrics`);
    const warmBefore = (await scrape(workerMetrics)).value('baler_vm_boots_total', { kind: 'warm' });
    // Runs until cancelled, in the pool's warm VM; the only worker is busy with it meanwhile.
    const blocker = await submitBuild(service, { name: 'metrics/blocker', runAsRoot: 'echo started; sleep 600', timeout: 600 });
    await until(async () => (await (await fetch(`${service.url}/v1/builds/${blocker}/logs`)).text()).includes('started'), 120_000);
    const waiting = await submitBuild(service, { name: 'metrics/waiting', contents: [{ text: 'w', to: '/w' }] });
    const busy = await scrape(`${service.url}/metrics`);
    expect(busy.value('baler_builds', { state: 'running' })).toBe(1);
    expect(busy.value('baler_builds', { state: 'queued' })).toBe(1);
    expect(busy.value('baler_queue_jobs', { queue: 'builds', state: 'active' })).toBe(1);
    // Every build has a priority: BullMQ keeps waiting ones as `prioritized`.
    expect(busy.value('baler_queue_jobs', { queue: 'builds', state: 'prioritized' })).toBe(1);
    // The pool boots a replacement for the VM the blocker took.
    await until(async () => (await scrape(workerMetrics)).value('baler_vm_boots_total', { kind: 'warm' }) > warmBefore, 60_000);

    expect((await cancel(service, waiting)).status).toBe(200);
    expect((await cancel(service, blocker)).status).toBe(200);
    await until(async () => (await scrape(workerMetrics)).value('baler_build_duration_seconds_count', { outcome: 'cancelled' }) === 1, 60_000);
    const after = await scrape(`${service.url}/metrics`);
    expect(after.value('baler_builds', { state: 'running' })).toBe(0);
    expect(after.value('baler_builds', { state: 'queued' })).toBe(0);
    expect(after.value('baler_builds_finished_total', { outcome: 'cancelled' }) - before.value('baler_builds_finished_total', { outcome: 'cancelled' })).toBe(2);
  }, 300_000);
});

describe('a worker whose VM kernel QEMU refuses', () => {
  let service: Service;
  let workerMetrics: string;

  beforeAll(async () => {
    // The real assets' cache entry, with a vmlinux that is not a kernel: QEMU exits at once
    // ("linux kernel too old to load a ram disk"), before any guest code runs.
    const real = await ensureVmAssets();
    const cache = join(work, 'vm-cache');
    const entry = join(cache, basename(real.dir));
    await mkdir(entry, { recursive: true });
    await copyFile(join(dirname(real.dir), 'kernel-package.json'), join(cache, 'kernel-package.json')).catch(() => undefined);
    await copyFile(real.manifest, join(entry, 'manifest.json'));
    await symlink(real.initrd, join(entry, 'initrd.cpio'));
    await writeFile(join(entry, 'vmlinux'), randomBytes(65536));
    ({ service, workerMetrics } = await startMetered({ BALER_VM_CACHE: cache, BALER_BUILD_ATTEMPTS: '1' }));
  }, 120_000);

  afterAll(async () => {
    await service?.stop();
  });

  it('counts warm and cold VM boot failures', async () => {
    // The pool's warm VM fails at start-up.
    await until(async () => (await scrape(workerMetrics)).value('baler_vm_boot_failures_total', { kind: 'warm', platform: 'linux/amd64' }) >= 1, 60_000);
    const id = await submitBuild(service, { name: 'metrics/no-vm', memorySize: 256, runAsRoot: 'true' });
    const build = await waitForBuild(service, id, 120_000);
    expect(build.status).toBe('failed');
    expect(build.error?.detail).toMatch(/qemu-system-x86_64 failed/);
    const worker = await scrape(workerMetrics);
    expect(worker.value('baler_vm_boot_failures_total', { kind: 'cold', platform: 'linux/amd64' })).toBe(1);
    expect(worker.value('baler_vm_boots_total', { kind: 'cold', platform: 'linux/amd64' })).toBe(1);
    expect(worker.value('baler_build_duration_seconds_count', { outcome: 'failed' })).toBe(1);
  }, 180_000);
});

describe('with tokens', () => {
  let service: Service;

  beforeAll(async () => {
    const tokens = join(work, 'tokens');
    await writeFile(tokens, 'prometheus scrape-token\n');
    service = await startService({ BALER_TOKENS_FILE: tokens, BALER_LOCAL_WORKERS: '0' });
  }, 60_000);

  afterAll(async () => {
    await service?.stop();
  });

  it('needs a bearer token for /metrics, like every route but the health checks', async () => {
    expect((await fetch(`${service.url}/metrics`)).status).toBe(401);
    const scraped = await scrape(`${service.url}/metrics`, { authorization: 'Bearer scrape-token' });
    expect(scraped.value('process_cpu_seconds_total')).toBeGreaterThan(0);
    expect(
      scraped
        .labelSets('baler_builds')
        .map((l) => l.state)
        .sort(),
    ).toEqual(['queued', 'running']);
  });
});
