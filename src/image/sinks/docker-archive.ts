import type { Readable } from 'node:stream';
import { hexOf } from '../../digest.ts';
import { canonicalJson } from '../canonical-json.ts';
import type { Image } from '../image.ts';
import { TarStreamWriter } from '../tar-writer.ts';

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
  return writeMergedDockerArchive([{ image, repoTag }], mtime);
}

/**
 * Several images in one archive, each of its tags loadable by one `docker load` (dockerTools'
 * mergeImages): layers the images share are written once, `manifest.json` lists every image,
 * `repositories` every tag.
 */
export function writeMergedDockerArchive(images: Array<{ image: Image; repoTag: RepoTag }>, mtime: number): Readable {
  const writer = new TarStreamWriter();
  const file = { type: 'file' as const, mode: 0o644, uid: 0, gid: 0, mtime };
  const text = (name: string, content: string) => {
    const data = Buffer.from(content, 'utf8');
    return writer.add({ ...file, name, size: data.length }, data);
  };

  (async () => {
    const written = new Set<string>();
    const manifest: Array<{ Config: string; Layers: string[]; RepoTags: string[] }> = [];
    const repositories: Record<string, Record<string, string>> = {};
    for (const { image, repoTag } of images) {
      for (const [i, legacy] of image.legacyLayers.entries()) {
        const layer = image.layers[i];
        if (!layer) throw new Error('image has fewer layers than legacy layer records');
        if (written.has(legacy.id)) continue;
        written.add(legacy.id);
        await writer.add({ ...file, name: `${legacy.id}/`, type: 'directory', mode: 0o755, size: 0 });
        await text(`${legacy.id}/VERSION`, '1.0');
        await text(`${legacy.id}/json`, legacy.json);
        await writer.addStream({ ...file, name: `${legacy.id}/layer.tar`, size: layer.size }, await layer.open());
      }
      const configName = `${hexOf(image.configDigest)}.json`;
      if (!written.has(configName)) {
        written.add(configName);
        await text(configName, image.config);
      }
      const reference = `${repoTag.name}:${repoTag.tag}`;
      const same = manifest.find((m) => m.Config === configName);
      if (same) same.RepoTags.push(reference);
      else manifest.push({ Config: configName, Layers: image.legacyLayers.map((l) => `${l.id}/layer.tar`), RepoTags: [reference] });
      const top = image.legacyLayers.at(-1);
      if (top) (repositories[repoTag.name] ??= {})[repoTag.tag] = top.id;
    }
    await text('manifest.json', canonicalJson(manifest));
    await text('repositories', canonicalJson(repositories));
    await writer.finish();
  })().catch((err: unknown) => writer.fail(err));
  return writer.stream;
}
