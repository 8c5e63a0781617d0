/**
 * Attack 2 of issue 12: a docker-archive base whose `manifest.json` lists tens of thousands of
 * images and whose `repositories` names tens of thousands more. Matching every name against
 * every image is names × images; an error that lists every image is megabytes of text.
 * Assembled by hand (no tool writes such an archive): one real layer and config, shared.
 */
import { createHash } from 'node:crypto';
import { RawTarFile, rawHeader } from './raw-tar.ts';

export interface ArchiveIndexBomb {
  images: number;
  names: number;
}

export const ARCHIVE_INDEX_BOMB: ArchiveIndexBomb = { images: 25_000, names: 25_000 };

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

/** A one-file layer tar, in memory (it is small). */
function smallLayer(): Buffer {
  const data = Buffer.from('hello\n');
  return Buffer.concat([rawHeader({ name: 'hello', size: data.length }), data, Buffer.alloc(512 - data.length), Buffer.alloc(1024)]);
}

export async function writeArchiveIndexBomb(path: string, shape: ArchiveIndexBomb = ARCHIVE_INDEX_BOMB): Promise<string> {
  const layer = smallLayer();
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [`sha256:${sha256(layer)}`] } }));
  const configPath = `${sha256(config)}.json`;
  const layerPath = `${sha256(layer)}/layer.tar`;
  const manifest = Array.from({ length: shape.images }, (_, i) => ({ Config: configPath, RepoTags: [`hostile/image-${i}:latest`], Layers: [layerPath] }));
  // Legacy ids that name no layer of the archive: each is looked for among all the images.
  const repositories = Object.fromEntries(Array.from({ length: shape.names }, (_, i) => [`hostile/name-${i}`, { latest: sha256(`name-${i}`) }]));

  const tar = new RawTarFile(path);
  await tar.entry({ name: configPath }, config);
  await tar.entry({ name: `${sha256(layer)}/`, type: 'directory' });
  await tar.entry({ name: layerPath }, layer);
  await tar.entry({ name: 'manifest.json' }, Buffer.from(JSON.stringify(manifest)));
  await tar.entry({ name: 'repositories' }, Buffer.from(JSON.stringify(repositories)));
  return tar.close();
}
