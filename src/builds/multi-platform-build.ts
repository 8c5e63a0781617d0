/**
 * A multi-platform build (`platforms`): one job builds each platform's image in turn, as the
 * single-platform build of that platform (platforms.ts), then lays them out as one OCI image
 * index. One job rather than a child build per platform: the queue, the record, the cancel and
 * the build cache stay those of one build, and platforms that need no VM need no worker of
 * their own. The cost: a platform's VM step runs on the worker that took the job, so a build
 * whose platforms need VMs needs a worker serving all of them.
 */
import { Readable } from 'node:stream';
import type { Image } from '../image/image.ts';
import { OCI_MEDIA_TYPES } from '../image/sinks/oci-archive.ts';
import { loadImage } from '../image/stored-image.ts';
import { VmHostBusyError } from '../vm/errors.ts';
import { describeOutput, indexOutput } from './build-archive.ts';
import type { BuildDeps } from './build-deps.ts';
import { observeStep, SILENT_OBSERVER } from './build-observer.ts';
import type { PlatformState } from './build-record.ts';
import type { BuildResult, PlatformImage } from './build-result.ts';
import { platformsOf, specForPlatform } from './platforms.ts';
import type { ResolvedSpec } from './spec.ts';

/** Builds one single-platform spec (runBuild, or runBuild in a sandbox thread). */
export type RunOne = (spec: ResolvedSpec, deps: BuildDeps) => Promise<BuildResult>;

/**
 * Build every platform of `spec` in its order with `runOne`, telling `onStates` each change of a
 * platform's state (and the observer each step's platform: its forPlatform view); the first platform that fails fails the build, its error's message prefixed
 * with the platform (its kind kept: the worker classifies it as it would a single build's).
 * Then the index over the images is stored and its `oci-archive` described: the build's archive.
 */
export async function runPlatforms(spec: ResolvedSpec, deps: BuildDeps, runOne: RunOne, onStates?: (states: PlatformState[]) => Promise<void>): Promise<BuildResult> {
  const platforms = platformsOf(spec);
  const observer = deps.observer ?? SILENT_OBSERVER;
  const states: PlatformState[] = platforms.map((platform) => ({ platform, status: 'queued' }));
  const tell = async (i: number, state: PlatformState) => {
    states[i] = state;
    await onStates?.(states.map((s) => ({ ...s })));
  };
  const built: BuildResult[] = [];
  for (const [i, platform] of platforms.entries()) {
    deps.signal?.throwIfAborted();
    await tell(i, { platform, status: 'running' });
    observer.log(`baler: building ${platform} (platform ${i + 1} of ${platforms.length})\n`);
    try {
      built.push(await runOne(specForPlatform(spec, platform), { ...deps, observer: observer.forPlatform?.(platform) ?? observer }));
    } catch (err) {
      // Stopped (cancel, time limit) or sent back to the queue (no disk room yet): not this platform's failure.
      if (deps.signal?.aborted || err instanceof VmHostBusyError) throw err;
      const message = err instanceof Error ? err.message : String(err);
      await tell(i, { platform, status: 'failed', error: message });
      if (err instanceof Error) err.message = `${platform}: ${message}`;
      throw err;
    }
    await tell(i, { platform, status: 'succeeded' });
  }
  return indexResult(spec, platforms, built, deps);
}

/** The index over the built images, stored, and the result naming it; the first platform's image at the top. */
async function indexResult(spec: ResolvedSpec, platforms: string[], built: BuildResult[], deps: BuildDeps): Promise<BuildResult> {
  const { store } = deps;
  const observer = deps.observer ?? SILENT_OBSERVER;
  const images: Image[] = [];
  for (const result of built) images.push(await loadImage(store, result));
  const { compression } = spec;
  const archive = await observeStep(
    observer,
    'archive',
    { format: 'oci-archive', compression, platforms },
    async () => {
      const out = await indexOutput(images, spec, compression, store);
      await store.put(Readable.from([Buffer.from(out.layout.index.json, 'utf8')]));
      const info = await describeOutput(out, 'oci-archive', compression, store, (done, total) => observer.progress('archive', done, total));
      return { info, layout: out.layout };
    },
    (a) => ({ digest: a.info.digest, size: a.info.size, index: a.layout.index.digest }),
  );
  const { layout } = archive;
  const platformImages: PlatformImage[] = built.map((result, i) => ({
    platform: platforms[i] as string,
    imageId: result.imageId,
    diffIds: result.diffIds,
    layers: result.layers,
    manifest: { digest: layout.images[i]?.manifest.digest ?? result.imageId, size: layout.images[i]?.manifest.size ?? 0 },
    archive: result.archive,
    ...(result.base ? { base: result.base } : {}),
  }));
  const first = built[0] as BuildResult;
  return {
    imageId: first.imageId,
    diffIds: first.diffIds,
    layers: first.layers,
    archive: archive.info,
    index: { digest: layout.index.digest, size: layout.index.size, mediaType: OCI_MEDIA_TYPES.index },
    platforms: platformImages,
  };
}
