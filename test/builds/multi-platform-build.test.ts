/**
 * A multi-platform build in this thread (no service, no VM): runPlatforms over runBuild, its
 * index archive read by skopeo, built again in a fresh store to the same bytes, and pushed to
 * Debian's docker-registry as one OCI index.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { Readable } from 'node:stream';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { pino } from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadSchemas } from '../../src/api/openapi.ts';
import type { BuildLogWriter } from '../../src/builds/build-log-writer.ts';
import { indexOutput } from '../../src/builds/build-archive.ts';
import { planBuild } from '../../src/builds/build-plan.ts';
import type { BuildResult } from '../../src/builds/build-result.ts';
import type { PlatformState } from '../../src/builds/build-record.ts';
import { runPlatforms } from '../../src/builds/multi-platform-build.ts';
import { MemoryResultCache } from '../../src/builds/result-cache.ts';
import { runBuild } from '../../src/builds/run-build.ts';
import { resolveSpec } from '../../src/builds/spec.ts';
import type { StepEventData } from '../../src/events/build-event.ts';
import { BuildReporter } from '../../src/events/build-reporter.ts';
import type { BuildEventStream } from '../../src/events/event-stream.ts';
import { createWorkerMetrics } from '../../src/metrics/worker-metrics.ts';
import { WorkerObserver } from '../../src/worker/worker-observer.ts';
import { loadImage } from '../../src/image/stored-image.ts';
import { pushIndex } from '../../src/registry/push.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';
import { startRegistry, type TestRegistry } from '../registry/registry-server.ts';
import { saveOutput } from '../image/sinks/fixture.ts';
import { run } from '../support/run.ts';

const spec = resolveSpec(
  {
    name: 'multi/unit',
    tag: '2.0',
    platforms: ['linux/amd64', 'linux/arm64'],
    contents: [
      { text: 'shared\n', to: '/etc/shared.txt' },
      { text: 'amd64\n', to: '/etc/arch.txt', platform: 'linux/amd64' },
      { text: 'arm64\n', to: '/etc/arch.txt', platform: 'linux/arm64' },
    ],
  },
  new Date(0),
);

let dir: string;
let registry: TestRegistry;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'baler-multi-unit-'));
  registry = await startRegistry();
});

afterAll(async () => {
  await registry?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function build(root: string, states: PlatformState[][] = []) {
  const store = await FsBlobStore.create(join(dir, root));
  const deps = {
    store,
    tenant: 'alpha',
    allowDevices: false,
    cache: new MemoryResultCache(),
    vm: { run: () => Promise.reject(new Error('no VM')) },
    loadBuildImage: () => Promise.reject(new Error('no base')),
  };
  const result = await runPlatforms(spec, deps, runBuild, async (s) => {
    states.push(s);
  });
  return { store, result, cache: deps.cache };
}

const skopeo = async (args: string[]) => {
  const r = await run('skopeo', args);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout;
};

it('builds each platform in turn, and an index that skopeo reads; the same bytes from a fresh store', async () => {
  const states: PlatformState[][] = [];
  const { store, result } = await build('store-1', states);
  expect(states.map((s) => s.map((p) => p.status).join(','))).toEqual(['running,queued', 'succeeded,queued', 'succeeded,running', 'succeeded,succeeded']);
  expect(result.platforms?.map((p) => p.platform)).toEqual(['linux/amd64', 'linux/arm64']);
  expect(result.archive.format).toBe('oci-archive');
  // The index is stored.
  expect((await store.stat(result.index?.digest as `sha256:${string}`))?.size).toBe(result.index?.size);

  const images = await Promise.all((result.platforms ?? []).map((p) => loadImage(store, p)));
  const path = join(dir, 'index.tar');
  const saved = await saveOutput(await indexOutput(images, spec, spec.compression, store), path);
  expect(saved.digest).toBe(result.archive.digest);
  const raw = await skopeo(['inspect', '--raw', `oci-archive:${path}`]);
  expect(`sha256:${createHash('sha256').update(raw).digest('hex')}`).toBe(result.index?.digest);
  const index = JSON.parse(raw) as { manifests: Array<{ digest: string; platform: { os: string; architecture: string } }> };
  expect(index.manifests.map((m) => `${m.platform.os}/${m.platform.architecture}`)).toEqual(['linux/amd64', 'linux/arm64']);
  expect(index.manifests.map((m) => m.digest)).toEqual(result.platforms?.map((p) => p.manifest.digest));
  for (const arch of ['amd64', 'arm64']) {
    const target = join(dir, `copy-${arch}`);
    await skopeo(['copy', '--override-arch', arch, `oci-archive:${path}`, `dir:${target}`]);
    const manifest = JSON.parse(await readFile(join(target, 'manifest.json'), 'utf8')) as { config: { digest: string } };
    expect(JSON.parse(await readFile(join(target, manifest.config.digest.slice(7)), 'utf8')).architecture).toBe(arch);
  }

  const again = await build('store-2');
  const strip = (r: BuildResult) => JSON.stringify({ ...r, archive: { ...r.archive, parts: undefined }, platforms: r.platforms?.map((p) => ({ ...p, archive: { ...p.archive, parts: undefined } })) });
  expect(strip(again.result)).toBe(strip(result));
}, 60_000);

it('fails naming the platform that failed, keeping the error’s kind', async () => {
  const store = await FsBlobStore.create(join(dir, 'store-fail'));
  const garbage = await store.put(Readable.from([Buffer.alloc(2048, 7)]));
  const broken = { ...spec, contents: [...spec.contents, { tar: garbage.digest, platform: 'linux/arm64' }] };
  const states: PlatformState[][] = [];
  const deps = { store, tenant: 'alpha', allowDevices: false, vm: { run: () => Promise.reject(new Error('no VM')) }, loadBuildImage: () => Promise.reject(new Error('no base')) };
  const err = await runPlatforms(broken, deps, runBuild, async (s) => {
    states.push(s);
  }).then(
    () => new Error('it succeeded'),
    (e: unknown) => e as Error,
  );
  expect(err.constructor.name).toBe('LayerInputError');
  expect(err.message).toMatch(/^linux\/arm64: .*not a valid tar/);
  expect(states.at(-1)?.map((s) => s.status)).toEqual(['succeeded', 'failed']);
});

it('pushes every image and the index under one tag', async () => {
  const { store, result } = await build('store-push');
  const images = await Promise.all((result.platforms ?? []).map((p) => loadImage(store, p)));
  const ref = `${registry.host}/multi/unit:2.0`;
  const pushed = await pushIndex(store, images, ref, { registries: new Map([[registry.host, { insecure: true }]]) });
  expect(pushed.manifestDigest).toBe(result.index?.digest);
  // What signatures and attestations attach to: each platform's manifest in the platforms' order, then the index.
  expect(pushed.manifests.map((m) => m.digest)).toEqual([...(result.platforms ?? []).map((p) => p.manifest.digest), result.index?.digest]);
  const raw = await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${ref}`]);
  expect((JSON.parse(raw) as { manifests: Array<{ platform: { architecture: string } }> }).manifests.map((m) => m.platform.architecture)).toEqual(['amd64', 'arm64']);
  for (const p of result.platforms ?? []) {
    const arch = p.platform.slice('linux/'.length);
    const target = join(dir, `pulled-${arch}`);
    await skopeo(['copy', '--src-tls-verify=false', '--override-arch', arch, `docker://${ref}`, `dir:${target}`]);
    const manifest = await readFile(join(target, 'manifest.json'));
    expect(`sha256:${createHash('sha256').update(manifest).digest('hex')}`).toBe(p.manifest.digest);
    expect((JSON.parse(manifest.toString('utf8')) as { config: { digest: string } }).config.digest).toBe(p.imageId);
  }
}, 60_000);

it('plans each platform in a dry run, from the caches its build filled', async () => {
  const { store, cache, result } = await build('store-plan');
  const plan = await planBuild(spec, { store, cache, tenant: 'alpha', allowDevices: false, noCache: false });
  expect(plan.platforms?.map((p) => [p.platform, p.layers.map((l) => [l.contents, l.diffId, l.cached])])).toEqual(result.platforms?.map((p, i) => [p.platform, [[[0, i + 1], p.diffIds[0], true]]]));
  expect(plan.layers).toEqual(plan.platforms?.[0]?.layers);
  expect(plan.cached).toBe(false);
});

/** A worker's observer (events, service log, metrics) over fakes: what it tells of each step. */
function recordingObserver(platform?: string) {
  const events: StepEventData[] = [];
  const lines: Array<Record<string, unknown>> = [];
  const stream = { append: async (_id: string, event: string, data: unknown) => void (event === 'step' && events.push(data as StepEventData)) } as unknown as BuildEventStream;
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  const reporter = new BuildReporter(stream, 'b1', logger);
  const metrics = createWorkerMetrics();
  const log = { write: () => {} } as unknown as BuildLogWriter;
  const observer = new WorkerObserver({ logger, log, events: reporter, metrics, platform });
  return { observer, events, steps: () => lines.filter((l) => l.msg === 'build step'), metrics, flush: () => reporter.flush() };
}

it("names each step's platform in its events and log lines; the index's archive step names none", async () => {
  const store = await FsBlobStore.create(join(dir, 'store-observed'));
  const { observer, events, steps, metrics, flush } = recordingObserver();
  const deps = { store, tenant: 'alpha', allowDevices: false, observer, vm: { run: () => Promise.reject(new Error('no VM')) }, loadBuildImage: () => Promise.reject(new Error('no base')) };
  await runPlatforms(spec, deps, runBuild);
  await flush();
  // Each platform's steps in turn, then the index's archive (over both).
  const runs = (platforms: Array<string | undefined>) => platforms.filter((p, i) => i === 0 || p !== platforms[i - 1]);
  expect(runs(events.map((e) => e.platform))).toEqual(['linux/amd64', 'linux/arm64', undefined]);
  expect(events.at(-1)).toMatchObject({ name: 'archive', phase: 'finished', detail: { platforms: ['linux/amd64', 'linux/arm64'] } });
  expect(events.filter((e) => e.platform === 'linux/arm64').map((e) => `${e.name} ${e.phase}`)).toEqual(events.filter((e) => e.platform === 'linux/amd64').map((e) => `${e.name} ${e.phase}`));
  // One numbering across the platforms: the build's steps in the order they began.
  const begun = events.filter((e) => e.phase !== 'finished').map((e) => e.index);
  expect(begun).toEqual(begun.map((_, i) => i));
  // The service log's step lines say the same.
  expect(steps().map((l) => l.platform)).toEqual(events.map((e) => e.platform));
  // The events are what the API publishes (StepEvent in openapi.yaml).
  const ajv = new Ajv2020({ strict: false });
  for (const schema of loadSchemas()) ajv.addSchema(schema);
  const validate = ajv.getSchema('StepEvent');
  for (const event of events) expect(validate?.(event), JSON.stringify(validate?.errors)).toBe(true);
  // No VM step: no step duration carries a platform (only a VM's may: it is one the worker serves).
  const durations = await metrics.stepDuration.get();
  expect(durations.values.filter((v) => v.labels.platform !== undefined)).toEqual([]);
});

it("names a single-platform build's platform on every step", async () => {
  const store = await FsBlobStore.create(join(dir, 'store-observed-single'));
  const { observer, events, steps, flush } = recordingObserver('linux/arm64');
  const single = resolveSpec({ name: 'single/arm', architecture: 'arm64', contents: [{ text: 'arm64\n', to: '/etc/arch.txt' }] }, new Date(0));
  await runBuild(single, { store, tenant: 'alpha', allowDevices: false, observer, vm: { run: () => Promise.reject(new Error('no VM')) }, loadBuildImage: () => Promise.reject(new Error('no base')) });
  await flush();
  expect(events.length).toBeGreaterThan(0);
  expect(new Set(events.map((e) => e.platform))).toEqual(new Set(['linux/arm64']));
  expect(new Set(steps().map((l) => l.platform))).toEqual(new Set(['linux/arm64']));
});
