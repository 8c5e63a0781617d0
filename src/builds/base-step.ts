import type { Image, StoredImage } from '../image/image.ts';
import { statedPlatform, missingPlatformMessage, platformText, statesOtherPlatform, type WantedPlatform } from '../image/platform.ts';
import { importArchive } from '../image/sources/archive/import-archive.ts';
import { applyDevicePolicyToBase } from '../image/sources/base-devices.ts';
import { loadImage } from '../image/stored-image.ts';
import { pullImage } from '../registry/pull.ts';
import { BaseImageError } from './base-image-error.ts';
import type { BuildContext } from './build-deps.ts';
import { observeStep } from './build-observer.ts';
import { baseDevicesCacheKey, findCachedImport, findCachedPolicedBase } from './layer-cache.ts';
import { importCacheKey, type BaseStep } from './step-plan.ts';

/** The base image of the `base` step: an earlier build's, pulled, or imported (or taken from the import cache). */
export async function loadBase(step: BaseStep, ctx: BuildContext): Promise<Image> {
  const { from } = step;
  const { observer, store } = ctx;
  // An earlier build's layers went through the device rule when it ran.
  if ('build' in from) return observeStep(observer, 'base', from, async () => ofPlatform(await ctx.loadBuildImage(from.build, step.image.architecture), step.image, `base build ${from.build}`));
  if ('ref' in from) {
    return observeStep(observer, 'base', from, async () => {
      const pulled = await pullImage(store, from.ref, { registries: ctx.registries ?? new Map(), architecture: step.image.architecture, maxLayers: step.image.maxLayers });
      const policed = await withDevicePolicy(pulled, ctx);
      return loadImage(store, policed);
    });
  }
  // An archive is verified and stored layer by layer once; later builds on it read nothing.
  const key = importCacheKey({ ...step, from });
  const lookUp = ctx.cache && !ctx.noCache;
  const cached = lookUp && ctx.cache ? await findCachedImport(ctx.cache, store, key) : null;
  if (lookUp) observer.cacheLookup('import', cached !== null);
  if (cached) {
    observer.stepCached('base', from);
    const policed = await withDevicePolicy(cached, ctx);
    return loadImage(store, policed);
  }
  return observeStep(observer, 'base', from, async () => {
    // The budgets bound the work, not the result: they stay out of the cache key.
    const options = { ...step.image, budgets: ctx.archiveBudgets };
    const imported = await importArchive(store, from.blob, options, (done, total) => observer.progress('import', done, total));
    await ctx.cache?.set('import', key, imported);
    const policed = await withDevicePolicy(imported, ctx);
    return loadImage(store, policed);
  });
}

/** An earlier build's image is the platform its config states (it built for it): another is refused, as other bases' are. */
function ofPlatform(image: Image, want: WantedPlatform, what: string): Image {
  const stated = statedPlatform(JSON.parse(image.config));
  if (statesOtherPlatform(stated, want)) throw new BaseImageError(missingPlatformMessage(what, want, platformText(stated)));
  return image;
}

/**
 * A base as imported or pulled, with the device rule applied to its layers (base-devices.ts):
 * once per image and setting, then from the cache (its log lines with it, said again).
 */
async function withDevicePolicy(image: StoredImage, ctx: BuildContext): Promise<StoredImage> {
  const { cache, store, allowDevices } = ctx;
  const hit = cache && !ctx.noCache ? await findCachedPolicedBase(cache, store, image, allowDevices) : null;
  const policed = hit ?? (await applyDevicePolicyToBase(store, image, { allowDevices, tarLimits: ctx.usage.tarLimits }));
  if (!hit) await cache?.set('import', baseDevicesCacheKey(image, allowDevices), policed);
  for (const line of policed.log) ctx.observer.log(line);
  return policed.image;
}
