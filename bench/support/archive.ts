/**
 * Checks, outside the timed part, that both sides made the same change: the top layer of a
 * docker-archive holds the new /etc/passwd line and /home/bench/hello.txt owned by 1000:1000.
 */
import { createReadStream } from 'node:fs';
import { posix } from 'node:path';
import { Readable } from 'node:stream';
import { extract } from 'tar-stream';

interface Entry {
  name: string;
  type: string;
  uid: number;
  gid: number;
  linkname: string | undefined;
  data: Buffer;
}

async function readTar(source: Readable): Promise<Map<string, Entry>> {
  const entries = new Map<string, Entry>();
  const ex = extract();
  source.pipe(ex);
  for await (const entry of ex) {
    const chunks: Buffer[] = [];
    for await (const chunk of entry) chunks.push(chunk as Buffer);
    const h = entry.header;
    const name = h.name.replace(/^\.\//, '').replace(/\/$/, '');
    entries.set(name, { name, type: h.type ?? 'file', uid: h.uid ?? 0, gid: h.gid ?? 0, linkname: h.linkname ?? undefined, data: Buffer.concat(chunks) });
  }
  return entries;
}

/** The entries of the top layer of a docker-archive (layer paths may be symlinks, as buildah writes them). */
export async function topLayerOf(archivePath: string): Promise<Map<string, Entry>> {
  const outer = await readTar(createReadStream(archivePath));
  const manifest = JSON.parse(outer.get('manifest.json')?.data.toString('utf8') ?? 'null') as { Layers: string[] }[] | null;
  const layers = manifest?.[0]?.Layers;
  if (!layers || layers.length === 0) throw new Error(`${archivePath}: no layers in manifest.json`);
  let name = layers[layers.length - 1] as string;
  for (let hops = 0; hops < 8; hops++) {
    const e = outer.get(name);
    if (!e) throw new Error(`${archivePath}: ${name} missing`);
    if (e.type !== 'symlink') return readTar(Readable.from([e.data]));
    name = posix.normalize(posix.join(posix.dirname(name), e.linkname ?? ''));
  }
  throw new Error(`${archivePath}: symlink loop at ${name}`);
}

/** Throws unless the top layer holds the change CHANGE_SCRIPT makes. */
export async function checkChange(archivePath: string, who: string): Promise<void> {
  const layer = await topLayerOf(archivePath);
  const passwd = layer.get('etc/passwd');
  const hello = layer.get('home/bench/hello.txt');
  const home = layer.get('home/bench');
  const problems: string[] = [];
  if (!passwd?.data.toString('utf8').includes('bench:x:1000:1000:')) problems.push('/etc/passwd lacks the bench user');
  if (hello?.data.toString('utf8') !== 'written by bench\n') problems.push('/home/bench/hello.txt missing or wrong');
  if (hello && (hello.uid !== 1000 || hello.gid !== 1000)) problems.push(`/home/bench/hello.txt owned by ${hello.uid}:${hello.gid}`);
  if (home && (home.uid !== 1000 || home.gid !== 1000)) problems.push(`/home/bench owned by ${home.uid}:${home.gid}`);
  if (problems.length > 0) throw new Error(`${who}: the output does not hold the change: ${problems.join('; ')} (top layer: ${[...layer.keys()].join(', ')})`);
}

/** Throws unless the docker-archive's image config states `architecture` (arm64 outputs say they are arm64). */
export async function checkArchitecture(archivePath: string, architecture: string, who: string): Promise<void> {
  const outer = await readTar(createReadStream(archivePath));
  const manifest = JSON.parse(outer.get('manifest.json')?.data.toString('utf8') ?? 'null') as { Config: string }[] | null;
  const configName = manifest?.[0]?.Config;
  const config = configName ? outer.get(configName) : undefined;
  const stated = config ? (JSON.parse(config.data.toString('utf8')) as { architecture?: string }).architecture : undefined;
  if (stated !== architecture) throw new Error(`${who}: the image config states architecture ${stated ?? '(none)'}, not ${architecture}`);
}
