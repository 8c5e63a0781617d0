/**
 * Builds in their sandbox thread (real threads, a real filesystem store): the same result as
 * in this thread, a memory bomb that ends the thread and not this process, a stop that takes
 * effect at once in the middle of synchronous work, and VM steps across the boundary. The VM
 * here is a stand-in that reads its inputs and answers an upper tar: QEMU through the sandbox
 * is what test/e2e (run-as-root, formats) run.
 */
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { BudgetExceededError } from '../../src/budget.ts';
import type { BuildDeps } from '../../src/builds/build-deps.ts';
import { runBuild } from '../../src/builds/run-build.ts';
import { resolveSpec, type BuildSpec } from '../../src/builds/spec.ts';
import type { Digest } from '../../src/digest.ts';
import { DEFAULT_LAYER_BUDGETS } from '../../src/image/build-usage.ts';
import { encodeHeader, padding } from '../../src/image/tar-writer.ts';
import { BuildSandbox, SandboxStoppedError } from '../../src/sandbox/build-sandbox.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';
import type { VmJob, VmRunner } from '../../src/vm/vm-runner.ts';
import { busyboxTar } from '../support/images.ts';
import { SILENT_OBSERVER } from '../../src/builds/build-observer.ts';

let dir: string;
let store: FsBlobStore;
let busybox: Digest;
/** A tar of 300,000 empty files in 100 directories: seconds of indexing, sorting and writing. */
let manyFiles: Digest;

async function writeTar(path: string, entries: Iterable<{ name: string; data?: Buffer }>): Promise<void> {
  const out = createWriteStream(path);
  for (const { name, data } of entries) {
    const size = data?.length ?? 0;
    const header = encodeHeader({ name, type: 'file', mode: 0o644, uid: 0, gid: 0, size, mtime: 0 });
    const chunk = data ? Buffer.concat([header, data, Buffer.alloc(padding(size))]) : header;
    if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  out.end(Buffer.alloc(1024));
  await new Promise<void>((r) => out.once('finish', () => r()));
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'baler-sandbox-'));
  store = await FsBlobStore.create(join(dir, 'store'));
  const put = async (path: string) => (await store.put((await import('node:fs')).createReadStream(path))).digest;
  busybox = await put(await busyboxTar());
  const many = join(dir, 'many.tar');
  await writeTar(
    many,
    (function* () {
      for (let i = 0; i < 300_000; i++) yield { name: `d${i % 100}/f${i}` };
    })(),
  );
  manyFiles = await put(many);
}, 120_000);

afterAll(async () => rm(dir, { recursive: true, force: true }));

const spec = (s: Omit<BuildSpec, 'name'>) => resolveSpec({ name: 'sandbox/test', compression: 'none', ...s }, new Date(0));

function deps(extra: Omit<Partial<BuildDeps>, 'tenant'> = {}): BuildDeps {
  return {
    store,
    vm: { run: () => Promise.reject(new Error('no VM in this test')) },
    loadBuildImage: () => Promise.reject(new Error('no base builds in this test')),
    tenant: 'default',
    allowDevices: false,
    ...extra,
  };
}

function sandbox(heapMiB = 256): BuildSandbox {
  return new BuildSandbox({ store: { store: 'fs', dataDir: join(dir, 'store'), s3: { bucket: '', region: '', endpoint: undefined } }, heapMiB });
}

const noBaseImages = { buildId: 'test', buildImage: () => Promise.reject(new Error('no base builds in this test')) };

it('gives the result a build in this thread gives, and reports what it observes here', async () => {
  const s = spec({
    contents: [
      { tar: busybox, to: '/opt' },
      { text: 'hi\n', to: '/etc/motd' },
    ],
  });
  const here = await runBuild(s, deps());
  const events: string[] = [];
  const observer = {
    ...SILENT_OBSERVER,
    stepStarted: (name: string) => {
      events.push(`${name} started`);
      return () => events.push(`${name} finished`);
    },
    stepCached: (name: string) => events.push(`${name} cached`),
  };
  const box = sandbox();
  try {
    const there = await box.run(s, deps({ observer }), noBaseImages);
    expect(there).toEqual(here);
  } finally {
    await box.close();
  }
  expect(events).toEqual(['contents started', 'layer started', 'layer finished', 'contents finished', 'archive started', 'archive finished']);
}, 60_000);

it('fails a build over its heap budget, naming it; this thread never stalls', async () => {
  const delay = monitorEventLoopDelay({ resolution: 10 });
  const box = sandbox(16);
  delay.enable();
  try {
    const err = await box.run(spec({ contents: [{ tar: manyFiles }] }), deps(), noBaseImages).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BudgetExceededError);
    expect((err as BudgetExceededError).setting).toBe('BALER_BUILD_HEAP_MIB');
    expect((err as Error).message).toMatch(/ran out of memory .*BALER_BUILD_HEAP_MIB is 16/);
  } finally {
    delay.disable();
    await box.close();
  }
  // The thread churned at its limit; this one went on (vitest's own work shares it).
  expect(delay.percentile(99) / 1e6).toBeLessThan(200);
}, 120_000);

it("holds a build to the operator's layer budgets in its thread", async () => {
  const box = sandbox();
  try {
    const layerBudgets = { ...DEFAULT_LAYER_BUDGETS, maxBuildEntries: 1000 };
    const err = await box.run(spec({ contents: [{ tar: manyFiles }] }), deps({ layerBudgets }), noBaseImages).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BudgetExceededError);
    expect(err).toMatchObject({ setting: 'BALER_MAX_BUILD_ENTRIES', limit: 1000 });
    expect((err as Error).message).toMatch(/^contents\[0\]: more than 1000 entries in the build's layers/);
  } finally {
    await box.close();
  }
}, 60_000);

it('stops a build within a moment when its signal aborts, in the middle of its synchronous work', async () => {
  const box = sandbox();
  const controller = new AbortController();
  let underWay!: () => void;
  const contents = new Promise<void>((resolve) => (underWay = resolve));
  try {
    // More entries than a build may hold by default: a budget must not end it before the stop.
    const layerBudgets = { ...DEFAULT_LAYER_BUDGETS, maxBuildEntries: 1_000_000 };
    const started = box.run(
      spec({ contents: [{ tar: manyFiles }, { tar: manyFiles, to: '/again' }] }),
      deps({ signal: controller.signal, observer: { ...SILENT_OBSERVER, stepStarted: () => (underWay(), () => {}) }, layerBudgets }),
      noBaseImages,
    );
    // Under way: indexing 600,000 entries.
    await contents;
    await new Promise((r) => setTimeout(r, 700));
    const abortedAt = performance.now();
    controller.abort();
    const err = await started.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SandboxStoppedError);
    expect(performance.now() - abortedAt).toBeLessThan(2000);
  } finally {
    await box.close();
  }
}, 60_000);

it("runs VM steps on this thread's runner, handing it the inputs as often as it asks", async () => {
  const seen: { lower: Buffer[]; upper: Buffer[] } = { lower: [], upper: [] };
  let disposed = 0;
  const upper = join(dir, 'upper.tar');
  await writeTar(upper, [{ name: 'made-by-script', data: Buffer.from('hello\n') }]);
  const vm: VmRunner = {
    async run(job: VmJob) {
      // Twice, as the runner does when a warm VM is lost after taking the inputs.
      for (let i = 0; i < 2; i++) {
        seen.lower.push(await buffer((await job.lowerTar?.()) ?? Readable.from([])));
        seen.upper.push(await buffer((await job.upperTar?.()) ?? Readable.from([])));
      }
      job.onLog?.('script output\n');
      return {
        outcome: { ok: true },
        openUpperTar: async () => (await import('node:fs')).createReadStream(upper),
        dispose: async () => void disposed++,
      };
    },
  };
  const base = await runBuild(spec({ contents: [{ tar: busybox }] }), deps());
  const logs: string[] = [];
  const box = sandbox();
  try {
    const result = await box.run(
      spec({ fromImage: { build: 'base' }, contents: [{ text: 'x', to: '/x' }], runAsRoot: 'true' }),
      deps({ vm, observer: { ...SILENT_OBSERVER, log: (text) => logs.push(text) } }),
      { buildId: 'test', buildImage: async () => ({ imageId: base.imageId, layers: base.layers }) },
    );
    expect(result.diffIds.slice(0, base.diffIds.length)).toEqual(base.diffIds);
    expect(result.diffIds).toHaveLength(base.diffIds.length + 1);
  } finally {
    await box.close();
  }
  expect(seen.lower[0]?.length).toBeGreaterThan(1_000_000); // busybox, in overlay form
  expect(seen.lower[1]?.equals(seen.lower[0] as Buffer)).toBe(true);
  expect(seen.upper[1]?.equals(seen.upper[0] as Buffer)).toBe(true);
  expect(logs).toEqual(['script output\n']);
  expect(disposed).toBe(1);
}, 60_000);
