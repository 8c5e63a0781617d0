import { text } from 'node:stream/consumers';
import type { Digest } from '../../digest.ts';
import type { BlobStore } from '../../store/blob-store.ts';
import { DevicePolicy } from '../device-policy.ts';
import type { ImageConfig, StoredImage } from '../image.ts';
import type { Layer } from '../layer.ts';
import { LayerInputError, normalizeLayerPath, type LayerEntry } from '../layer-entry.ts';
import { asEntry } from '../overlay-form.ts';
import { storeLegacyChain } from '../legacy-layer.ts';
import { writeLayerTar } from '../layer-writer.ts';
import { indexTar, TarFormatError, type IndexedTarEntry } from '../tar-index.ts';
import type { TarIndexLimits } from '../tar-limits.ts';

export interface BaseDevicesOptions {
  allowDevices: boolean;
  /** The build's tar budgets (BuildUsage.tarLimits); absent: the defaults. */
  tarLimits?: Partial<TarIndexLimits>;
}

/** A base image with the device rule applied to its layers, and the build log's lines about it. */
export interface PolicedBase {
  image: StoredImage;
  log: string[];
}

/**
 * The device rule (DevicePolicy) on the layers of a base image as it enters baler: imported
 * from an archive or pulled from a registry (an earlier build's layers went through it when
 * that build ran). Base layers are otherwise kept byte for byte (stored under their diff_ids
 * and reused as they are), so:
 *
 * - each layer is read once, its headers only (an index pass, no data), to find its device
 *   nodes; a device outside /dev/ fails the build unless the operator allows devices;
 * - a layer with none under /dev/ — nearly every layer of nearly every image — is kept as it
 *   is, its diff_id unchanged;
 * - a layer with some is written again without them: the same entries in the same order,
 *   with their names, modes, owners, times, xattrs, link targets and data (user and group
 *   names and PAX access/change times are not kept), under a new diff_id, and the legacy chain
 *   from that layer up is made again. The base's config (its run config and history) is
 *   used as it was.
 *
 * The caller caches the result by the image and the setting (runBuild), so a base is read for
 * this once, not once per build.
 */
export async function applyDevicePolicyToBase(store: BlobStore, image: StoredImage, opts: BaseDevicesOptions): Promise<PolicedBase> {
  const n = image.layers.length;
  const log: string[] = [];
  const layers: Layer[] = [];
  let firstChanged = -1;
  const done = new Map<Digest, { diffId: Digest; size: number; tarsum: string } | null>();
  for (const [i, layer] of image.layers.entries()) {
    const source = `base layer ${i + 1} of ${n} (${layer.diffId})`;
    let rewritten = done.get(layer.diffId);
    if (rewritten === undefined) {
      const devices = new DevicePolicy(source, opts.allowDevices);
      await scanLayer(store, layer.diffId, devices, opts.tarLimits);
      rewritten = devices.dropped > 0 ? await rewriteLayer(store, layer.diffId, new DevicePolicy(source, opts.allowDevices), opts.tarLimits) : null;
      const line = devices.logLine();
      if (line) log.push(rewritten ? `${line.trimEnd()}; the layer is written again without them: ${rewritten.diffId}\n` : line);
      done.set(layer.diffId, rewritten);
    }
    if (rewritten && firstChanged < 0) firstChanged = i;
    layers.push(rewritten ? { ...layer, ...rewritten } : layer);
  }
  if (firstChanged < 0) return { image, log };

  // Legacy ids chain: every layer from the first one written again gets a new id.
  const config = JSON.parse(await text(await store.open(image.imageId))) as ImageConfig;
  const fields = { architecture: config.architecture, os: config.os, created: config.created, config: config.config ?? {} };
  const chain = await storeLegacyChain(store, fields, layers.slice(firstChanged), image.layers[firstChanged - 1]?.v1Id);
  return { image: { ...image, layers: [...image.layers.slice(0, firstChanged), ...chain] }, log };
}

/** The layer's entries as the rule sees them: layer paths, hard links' targets as layer paths. */
async function* layerEntries(
  store: BlobStore,
  diffId: Digest,
  what: string,
  tarLimits: Partial<TarIndexLimits> | undefined,
): AsyncGenerator<{ path: string; linkTarget?: string; header: IndexedTarEntry }> {
  try {
    for await (const header of indexTar(await store.open(diffId), tarLimits)) {
      const path = normalizeLayerPath(header.name, `${what}: entry`);
      const linkTarget = header.type === 'link' ? normalizeLayerPath(header.linkname, `${what}: hard link target`) : undefined;
      yield { path, linkTarget, header };
    }
  } catch (err) {
    if (err instanceof TarFormatError) throw new LayerInputError(`${what} is not a valid tar: ${err.message}`, { cause: err });
    throw err;
  }
}

async function scanLayer(store: BlobStore, diffId: Digest, devices: DevicePolicy, tarLimits: Partial<TarIndexLimits> | undefined): Promise<void> {
  for await (const { path, linkTarget, header } of layerEntries(store, diffId, devices.source, tarLimits)) devices.admit(path, header.type, linkTarget);
}

/** The layer without what `devices` drops, stored; its diff_id, size and tarsum. */
async function rewriteLayer(store: BlobStore, diffId: Digest, devices: DevicePolicy, tarLimits: Partial<TarIndexLimits> | undefined): Promise<{ diffId: Digest; size: number; tarsum: string }> {
  async function* kept(): AsyncGenerator<LayerEntry> {
    for await (const { path, linkTarget, header } of layerEntries(store, diffId, devices.source, tarLimits)) {
      // The root entry (`./`) says nothing a layer needs; baler's own layers have none either.
      if (path === '' || !devices.admit(path, header.type, linkTarget)) continue;
      yield asEntry(path, header, diffId, linkTarget ?? header.linkname);
    }
  }
  const tar = writeLayerTar(kept(), store);
  const put = await store.put(tar.stream);
  return { diffId: put.digest, size: put.size, tarsum: await tar.tarsum };
}
