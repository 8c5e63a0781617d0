import type { Readable } from 'node:stream';
import { hexOf } from '../../digest.ts';
import { canonicalJson } from '../canonical-json.ts';
import type { Image } from '../image.ts';
import { TarPacker } from '../tar-packer.ts';

export interface RepoTag {
  name: string;
  tag: string;
}

/**
 * The image as a `docker save` (v1.2) archive in the seed's layout: per layer `<id>/VERSION`,
 * `<id>/json`, `<id>/layer.tar`, then `<config-hex>.json`, `manifest.json` and `repositories`.
 * Entry order, times and owners are fixed, so equal images give equal bytes. Layer data is
 * streamed from each layer, never held.
 */
export function writeDockerArchive(image: Image, repoTag: RepoTag, mtime: number): Readable {
  const packer = new TarPacker();
  const fixed = { mtime: new Date(mtime * 1000), uid: 0, gid: 0, uname: '', gname: '' };
  const file = { ...fixed, mode: 0o644 };

  const configName = `${hexOf(image.configDigest)}.json`;
  const layerPaths = image.legacyLayers.map((legacy) => `${legacy.id}/layer.tar`);
  const top = image.legacyLayers.at(-1);

  (async () => {
    for (const [i, legacy] of image.legacyLayers.entries()) {
      const layer = image.layers[i];
      if (!layer) throw new Error('image has fewer layers than legacy layer records');
      await packer.add({ ...fixed, name: `${legacy.id}/`, type: 'directory', mode: 0o755 });
      await packer.add({ ...file, name: `${legacy.id}/VERSION` }, '1.0');
      await packer.add({ ...file, name: `${legacy.id}/json` }, legacy.json);
      await packer.addStream({ ...file, name: `${legacy.id}/layer.tar`, size: layer.size }, await layer.open());
    }
    await packer.add({ ...file, name: configName }, image.config);
    const manifest = [{ Config: configName, Layers: layerPaths, RepoTags: [`${repoTag.name}:${repoTag.tag}`] }];
    await packer.add({ ...file, name: 'manifest.json' }, canonicalJson(manifest));
    await packer.add({ ...file, name: 'repositories' }, canonicalJson(top ? { [repoTag.name]: { [repoTag.tag]: top.id } } : {}));
    packer.finalize();
  })().catch((err: unknown) => packer.destroy(err));
  return packer.readable;
}
