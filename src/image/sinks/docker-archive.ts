import type { Readable } from 'node:stream';
import { hexOf } from '../../digest.ts';
import type { BlobStore } from '../../store/blob-store.ts';
import { canonicalJson } from '../canonical-json.ts';
import type { Image } from '../image.ts';
import { writePlannedTar, type PlannedEntry } from './tar-plan.ts';

export interface RepoTag {
  name: string;
  tag: string;
}

/**
 * The image as a `docker save` (v1.2) archive in nixpkgs dockerTools' layout: per layer `<id>/VERSION`,
 * `<id>/json`, `<id>/layer.tar`, then `<config-hex>.json`, `manifest.json` and `repositories`.
 * Entry order, times and owners are fixed, so equal images give equal bytes. Planned, not
 * written: layer data is a range of the stored layer blob, so the archive can be assembled on
 * download, with its exact length known before the first byte.
 */
export function planDockerArchive(image: Image, repoTag: RepoTag, mtime: number): PlannedEntry[] {
  return planMergedDockerArchive([{ image, repoTag }], mtime);
}

/**
 * Several images in one archive, each of its tags loadable by one `docker load` (dockerTools'
 * mergeImages): layers the images share are written once, `manifest.json` lists every image,
 * `repositories` every tag.
 */
export function planMergedDockerArchive(images: Array<{ image: Image; repoTag: RepoTag }>, mtime: number): PlannedEntry[] {
  const entries: PlannedEntry[] = [];
  const file = { type: 'file' as const, mode: 0o644, uid: 0, gid: 0, mtime };
  const text = (name: string, content: string) => {
    const bytes = Buffer.from(content, 'utf8');
    entries.push({ header: { ...file, name, size: bytes.length }, data: { bytes } });
  };

  const written = new Set<string>();
  const manifest: Array<{ Config: string; Layers: string[]; RepoTags: string[] }> = [];
  const repositories: Record<string, Record<string, string>> = {};
  for (const { image, repoTag } of images) {
    for (const [i, layer] of image.layers.entries()) {
      const json = image.legacyJson[i];
      if (json === undefined) throw new Error('image has fewer legacy jsons than layers');
      if (written.has(layer.v1Id)) continue;
      written.add(layer.v1Id);
      entries.push({ header: { ...file, name: `${layer.v1Id}/`, type: 'directory', mode: 0o755, size: 0 } });
      text(`${layer.v1Id}/VERSION`, '1.0');
      text(`${layer.v1Id}/json`, json);
      entries.push({ header: { ...file, name: `${layer.v1Id}/layer.tar`, size: layer.size }, data: { blob: layer.diffId, offset: 0 } });
    }
    const configName = `${hexOf(image.imageId)}.json`;
    if (!written.has(configName)) {
      written.add(configName);
      text(configName, image.config);
    }
    const reference = `${repoTag.name}:${repoTag.tag}`;
    const same = manifest.find((m) => m.Config === configName);
    if (same) same.RepoTags.push(reference);
    else manifest.push({ Config: configName, Layers: image.layers.map((l) => `${l.v1Id}/layer.tar`), RepoTags: [reference] });
    const top = image.layers.at(-1);
    if (top) (repositories[repoTag.name] ??= {})[repoTag.tag] = top.v1Id;
  }
  text('manifest.json', canonicalJson(manifest));
  text('repositories', canonicalJson(repositories));
  return entries;
}

/** The archive of one image as a stream (layers read from `store`). */
export function writeDockerArchive(image: Image, repoTag: RepoTag, mtime: number, store: BlobStore): Readable {
  return writePlannedTar(planDockerArchive(image, repoTag, mtime), store);
}

/** The merged archive of several images as a stream. */
export function writeMergedDockerArchive(images: Array<{ image: Image; repoTag: RepoTag }>, mtime: number, store: BlobStore): Readable {
  return writePlannedTar(planMergedDockerArchive(images, mtime), store);
}
