/**
 * Builds run in a sandbox: a worker thread per build attempt, with a heap limit, where every
 * parse and transform of the build's untrusted bytes happens (build-thread.ts). What a hostile
 * input can do there is bounded: a memory bomb ends the thread (the build fails with 422,
 * naming the budget), never the worker process; the worker's own event loop stays free for
 * lock renewals, heartbeats and cancels however long the thread computes; and stopping a build
 * terminates its thread at once, synchronous parsing included. The thread is thrown away after
 * its build: no state of one tenant's build is left for the next.
 *
 * A thread takes ~0.4 s to start (it loads the build's modules through tsx), so one is kept
 * started ahead of the next build.
 */
import { Worker } from 'node:worker_threads';
import type { QuotaSettings } from '../auth/tenant-quota.ts';
import { BudgetExceededError } from '../budget.ts';
import type { BuildDeps } from '../builds/build-deps.ts';
import type { FinishStep, ProgressName, StepDetail, StepName } from '../builds/build-observer.ts';
import type { BuildResult } from '../builds/build-result.ts';
import type { CacheKind } from '../builds/result-cache.ts';
import type { ResolvedSpec } from '../builds/spec.ts';
import type { StoredImage } from '../image/image.ts';
import { RpcEndpoint } from './port-rpc.ts';
import { serveDecompressors } from './remote-decompress.ts';
import { serveVmRunner } from './remote-vm.ts';
import { METHODS, NOTES, type SandboxBuild } from './sandbox-protocol.ts';

const ENTRY = new URL('./build-thread-entry.mjs', import.meta.url);

/** The setting of the sandbox's heap limit (its budget of memory). */
export const HEAP_SETTING = 'BALER_BUILD_HEAP_MIB';

export interface SandboxOptions {
  /** The store the builds write to, opened again in each thread. */
  store: SandboxBuild['store'];
  redisUrl?: string;
  /**
   * Every blob a build stores is charged to its tenant under these settings, in Redis at
   * `redisUrl` (reserved as it streams: TenantQuota). Absent: nothing is charged (tests).
   */
  quota?: QuotaSettings;
  /** The heap limit of a build's thread, MiB (V8's old generation; buffers come on top, bounded by the code). */
  heapMiB: number;
  /** Told the bytes of each blob a build adds to the store (the worker's metric). */
  onStored?: (bytes: number) => void;
}

/** What a sandboxed build needs of the worker besides its deps: whose build it is. */
export interface SandboxJob {
  buildId: string;
  /** An earlier build's image (its record), for `fromImage: {build}`. */
  buildImage(id: string, architecture?: string): Promise<StoredImage>;
}

/** The build was stopped (cancel, time limit) while it ran in its sandbox. */
export class SandboxStoppedError extends Error {
  constructor() {
    super('the build was stopped');
    this.name = 'SandboxStoppedError';
  }
}

export class BuildSandbox {
  private spare: Promise<SandboxThread> | undefined;
  private closed = false;

  constructor(private readonly options: SandboxOptions) {
    this.prepare();
  }

  /** Runs `runBuild(spec, deps)` in a thread of its own. */
  async run(spec: ResolvedSpec, deps: BuildDeps, job: SandboxJob): Promise<BuildResult> {
    const spare = this.spare ?? startThread(this.options);
    this.spare = undefined;
    this.prepare();
    const thread = await untilStopped(spare, deps.signal).catch((err: unknown) => {
      // Stopped before its thread was up: that thread goes once it is.
      if (err instanceof SandboxStoppedError)
        void spare.then(
          (t) => t.terminate(),
          () => {},
        );
      throw err;
    });
    return thread.build(spec, deps, job, this.options);
  }

  /** Stops the spare thread; builds running now are not touched. */
  async close(): Promise<void> {
    this.closed = true;
    const spare = this.spare;
    this.spare = undefined;
    await spare?.then(
      (t) => t.terminate(),
      () => {},
    );
  }

  private prepare(): void {
    if (this.closed) return;
    const spare = startThread(this.options);
    // A thread that fails to start fails the build that takes it (and the next is started afresh).
    spare.catch(() => {});
    this.spare = spare;
  }
}

/** `work`, or SandboxStoppedError as soon as `signal` aborts. */
function untilStopped<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return work;
  if (signal.aborted) return Promise.reject(new SandboxStoppedError());
  return new Promise<T>((resolve, reject) => {
    const stop = () => reject(new SandboxStoppedError());
    signal.addEventListener('abort', stop, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', stop));
  });
}

/** A thread started and ready (its modules loaded), waiting for one build. */
interface SandboxThread {
  build(spec: ResolvedSpec, deps: BuildDeps, job: SandboxJob, options: SandboxOptions): Promise<BuildResult>;
  terminate(): Promise<void>;
}

async function startThread(options: SandboxOptions): Promise<SandboxThread> {
  const worker = new Worker(ENTRY, {
    resourceLimits: { maxOldGenerationSizeMb: options.heapMiB, maxYoungGenerationSizeMb: Math.min(32, Math.max(8, options.heapMiB / 8)) },
    // Its output is the main thread's (service logs); nothing of it is read here.
    stdout: false,
    stderr: false,
  });
  const rpc = new RpcEndpoint(worker);
  // Ended before or while its build ran: why, as the build's error.
  const ended = new Promise<never>((_resolve, reject) => {
    worker.once('error', (err: Error & { code?: string }) => {
      if (err.code === 'ERR_WORKER_OUT_OF_MEMORY') {
        reject(new BudgetExceededError(HEAP_SETTING, options.heapMiB, 'the build ran out of memory', { cause: err }));
      } else {
        reject(new Error(`the build's sandbox thread failed: ${err.message}`, { cause: err }));
      }
    });
    worker.once('exit', (code) => reject(new Error(`the build's sandbox thread exited (code ${code})`)));
  });
  ended.catch(() => {});
  await Promise.race([new Promise<void>((resolve) => rpc.listen(NOTES.ready, () => resolve())), ended]);

  const terminate = async () => {
    rpc.close(new SandboxStoppedError());
    await worker.terminate();
  };
  return {
    terminate,
    async build(spec, deps, job) {
      const signal = deps.signal;
      const observer = deps.observer;
      const vm = serveVmRunner(rpc, deps.vm, { onLog: observer && ((text) => observer.log(text)), signal, logger: deps.logger });
      serveHost(rpc, deps, job, options);
      const decompressors = serveDecompressors(rpc);
      const stopped = new Promise<never>((_resolve, reject) => {
        if (!signal) return;
        const stop = () => {
          // At once, whatever the thread is doing; its VM step (main thread) sees the same signal.
          void worker.terminate();
          reject(new SandboxStoppedError());
        };
        if (signal.aborted) stop();
        else signal.addEventListener('abort', stop, { once: true });
      });
      stopped.catch(() => {});
      const build: SandboxBuild = {
        spec,
        buildId: job.buildId,
        tenant: deps.tenant,
        allowDevices: deps.allowDevices,
        registries: deps.registries,
        cache: deps.cache !== undefined,
        noCache: deps.noCache,
        archiveBudgets: deps.archiveBudgets,
        layerBudgets: deps.layerBudgets,
        store: options.store,
        redisUrl: options.redisUrl,
        quota: options.quota,
      };
      try {
        return await Promise.race([rpc.call<BuildResult>(METHODS.start, [build]), ended, stopped]);
      } finally {
        // Not awaited: a thread ends only once its file system calls in flight have (an fsync of
        // a large blob can take seconds), and nothing it does from now on is waited for.
        void terminate();
        decompressors.stopAll();
        await vm.disposeAll().catch((err: unknown) => deps.logger?.warn({ err }, "could not remove a VM step's files"));
      }
    },
  };
}

/** The worker's services the sandbox's build calls, and the notifications it sends. */
function serveHost(rpc: RpcEndpoint, deps: BuildDeps, job: SandboxJob, options: SandboxOptions): void {
  rpc.handle(METHODS.loadBuildImage, (id: string, architecture?: string) => job.buildImage(id, architecture));
  rpc.handle(METHODS.cacheGet, async (kind: CacheKind, key: string) => (deps.cache ? deps.cache.get(kind, key) : null));
  rpc.handle(METHODS.cacheSet, async (kind: CacheKind, key: string, value: unknown) => deps.cache?.set(kind, key, value));
  rpc.listen(NOTES.stored, (bytes: number) => options.onStored?.(bytes));
  // The build's observations, told by its thread in the order they happened.
  const { observer } = deps;
  if (!observer) return;
  rpc.listen(NOTES.cacheLookup, (cache: 'layer' | 'import', hit: boolean) => observer.cacheLookup(cache, hit));
  rpc.listen(NOTES.log, (text: string) => observer.log(text));
  const steps = new Map<number, FinishStep>();
  rpc.listen(NOTES.stepStarted, (token: number, name: StepName, detail?: StepDetail) => steps.set(token, observer.stepStarted(name, detail)));
  rpc.listen(NOTES.stepFinished, (token: number, detail?: StepDetail) => {
    steps.get(token)?.(detail);
    steps.delete(token);
  });
  rpc.listen(NOTES.stepCached, (name: StepName, detail?: StepDetail) => observer.stepCached(name, detail));
  rpc.listen(NOTES.progress, (what: ProgressName, done: number, total?: number) => observer.progress(what, done, total));
}
