/** Reading tars back with tools we did not write: GNU tar, and tar-stream for the raw headers. */
import { createReadStream } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tar from 'tar-stream';
import { run } from './run.ts';

export interface ListedEntry {
  name: string;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  size: number;
  mtime: number;
  linkname: string;
}

/** Every header of a tar file, in order, as tar-stream's extractor parses it. */
export async function listTar(path: string): Promise<ListedEntry[]> {
  const extract = tar.extract();
  const entries: ListedEntry[] = [];
  createReadStream(path).pipe(extract as unknown as NodeJS.WritableStream);
  for await (const entry of extract) {
    const h = entry.header;
    entries.push({
      name: h.name,
      type: h.type ?? 'file',
      mode: h.mode ?? 0,
      uid: h.uid ?? 0,
      gid: h.gid ?? 0,
      uname: h.uname ?? '',
      gname: h.gname ?? '',
      size: h.size ?? 0,
      mtime: (h.mtime?.getTime() ?? 0) / 1000,
      linkname: h.linkname ?? '',
    });
    entry.resume();
  }
  return entries;
}

/** Extract with GNU tar as root, keeping owners, modes and links. */
export async function extractLayer(path: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'baler-extract-'));
  const result = await run('tar', ['--same-owner', '--same-permissions', '--numeric-owner', '-C', dir, '-xf', path]);
  if (result.code !== 0) throw new Error(`tar -x failed: ${result.stderr}`);
  return dir;
}
