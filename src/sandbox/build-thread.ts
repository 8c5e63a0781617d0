/**
 * A build's sandbox thread (started by build-sandbox.ts): runs one build's `runBuild` — every
 * parse and transform of its untrusted bytes — under the thread's heap limit, on a store of
 * its own over the same blobs, with the main thread's VM runner, earlier builds and cache
 * reached by calls. The main thread terminates it when the build ends or is stopped.
 */
import { parentPort } from 'node:worker_threads';
import { Redis } from 'ioredis';
import { TenantQuota } from '../auth/tenant-quota.ts';
import type { Image, StoredImage } from '../image/image.ts';
import { loadImage } from '../image/stored-image.ts';
import type { BuildObserver, FinishStep, ProgressName, StepDetail, StepName } from '../builds/build-observer.ts';
import type { BuildResult } from '../builds/build-result.ts';
import { runBuild } from '../builds/run-build.ts';
import type { CacheKind, ResultCache } from '../builds/result-cache.ts';
import { WriteCountingStore } from '../metrics/store-writes.ts';
import { ChargedStore } from '../store/charged-store.ts';
import { openBlobStore } from '../store/open-blob-store.ts';
import { RpcEndpoint } from './port-rpc.ts';
import { setDecompressorRunner } from '../image/sources/archive/decompress.ts';
import { decompressInMainThread } from './remote-decompress.ts';
import { RemoteVmRunner } from './remote-vm.ts';
import { METHODS, NOTES, type SandboxBuild } from './sandbox-protocol.ts';

/** Progress notifications at most this often (the main thread's reporter throttles too). */
const PROGRESS_INTERVAL_MS = 100;

if (!parentPort) throw new Error('build-thread.ts runs as a worker thread (build-sandbox.ts starts it)');
const rpc = new RpcEndpoint(parentPort);
// zstd, xz and bzip2 run as children of the main thread, which outlives this one (remote-decompress.ts).
setDecompressorRunner((kind, source) => decompressInMainThread(rpc, kind, source));

/** What the build observes, told to the main thread's observer. */
class ObserverProxy implements BuildObserver {
  private nextToken = 0;
  private lastProgressAt = 0;

  stepStarted(name: StepName, detail?: StepDetail): FinishStep {
    const token = this.nextToken++;
    rpc.notify(NOTES.stepStarted, [token, name, detail]);
    return (done) => rpc.notify(NOTES.stepFinished, [token, done]);
  }

  stepCached(name: StepName, detail?: StepDetail): void {
    rpc.notify(NOTES.stepCached, [name, detail]);
  }

  progress(what: ProgressName, bytesDone: number, bytesTotal?: number): void {
    const now = Date.now();
    if (now - this.lastProgressAt < PROGRESS_INTERVAL_MS && bytesDone !== bytesTotal) return;
    this.lastProgressAt = now;
    rpc.notify(NOTES.progress, [what, bytesDone, bytesTotal]);
  }

  log(text: string): void {
    rpc.notify(NOTES.log, [text]);
  }

  cacheLookup(cache: 'layer' | 'import', hit: boolean): void {
    rpc.notify(NOTES.cacheLookup, [cache, hit]);
  }
}

const remoteCache: ResultCache = {
  get: <T>(kind: CacheKind, key: string) => rpc.call<T | null>(METHODS.cacheGet, [kind, key]),
  set: (kind: CacheKind, key: string, value: unknown) => rpc.call<void>(METHODS.cacheSet, [kind, key, value]),
};

rpc.handle(METHODS.start, async (build: SandboxBuild): Promise<BuildResult> => {
  const redis = (build.store.store === 's3' || build.quota) && build.redisUrl ? new Redis(build.redisUrl, { maxRetriesPerRequest: 3 }) : undefined;
  if (build.quota && !redis) throw new Error("charging the build's tenant needs Redis (the sandbox's redisUrl)");
  const counted = new WriteCountingStore(await openBlobStore(build.store, { redis }), { inc: (bytes) => rpc.notify(NOTES.stored, [bytes]) });
  // Every blob the build stores is charged to its tenant as it streams (a thread stopped
  // mid-put leaves its reservation to expire).
  const store = build.quota && redis ? new ChargedStore(counted, new TenantQuota(redis, build.quota), build.tenant) : counted;
  return runBuild(build.spec, {
    store,
    vm: new RemoteVmRunner(rpc),
    tenant: build.tenant,
    allowDevices: build.allowDevices,
    registries: build.registries,
    loadBuildImage: async (id, architecture): Promise<Image> => loadImage(store, await rpc.call<StoredImage>(METHODS.loadBuildImage, [id, architecture])),
    observer: new ObserverProxy(),
    cache: build.cache ? remoteCache : undefined,
    noCache: build.noCache,
    archiveBudgets: build.archiveBudgets,
    layerBudgets: build.layerBudgets,
  });
});

rpc.notify(NOTES.ready, []);
