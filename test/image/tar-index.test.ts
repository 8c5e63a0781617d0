/** The tar index reads archives GNU tar wrote, and points at each entry's data exactly. */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile, link, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { indexTar, TarFormatError, type IndexedTarEntry } from '../../src/image/tar-index.ts';
import { TarSum } from '../../src/image/tarsum.ts';
import { run } from '../support/run.ts';

let work: string;
let root: string;
const LONG = `${'d'.repeat(120)}/${'f'.repeat(120)}`;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'baler-index-'));
  root = join(work, 'root');
  await mkdir(join(root, 'd'.repeat(120)), { recursive: true });
  await writeFile(join(root, LONG), 'long name content');
  await writeFile(join(root, 'small'), 'abc');
  await writeFile(join(root, 'block'), Buffer.alloc(1024, 7));
  await link(join(root, 'small'), join(root, 'hardlink'));
  await symlink(`/${'t'.repeat(150)}`, join(root, 'longlink'));
  await writeFile(join(root, 'ünï'), 'utf8 name');
});

afterAll(async () => rm(work, { recursive: true, force: true }));

async function index(buffer: Buffer, limits?: Parameters<typeof indexTar>[1]): Promise<IndexedTarEntry[]> {
  const out: IndexedTarEntry[] = [];
  for await (const entry of indexTar(Readable.from([buffer]), limits)) out.push(entry);
  return out;
}

async function makeTar(args: string[]): Promise<Buffer> {
  const path = join(work, `t-${Math.random().toString(36).slice(2)}.tar`);
  const result = await run('tar', ['-C', root, '-cf', path, ...args, '.']);
  expect(result.code, result.stderr).toBe(0);
  return readFile(path);
}

// (ustar cannot hold a 150-byte link target, so GNU tar refuses to write this tree as ustar.)
describe.each(['gnu', 'pax'])('GNU tar --format=%s', (format) => {
  it('indexes every entry, with data offsets that hold the file content', async () => {
    const tar = await makeTar([`--format=${format}`, '--owner=0', '--group=0', '--numeric-owner']);
    const entries = await index(tar);
    const byName = new Map(entries.map((e) => [e.name.replace(/^\.\//, ''), e]));
    for (const [name, content] of [
      [LONG, 'long name content'],
      ['small', 'abc'],
      ['ünï', 'utf8 name'],
    ] as const) {
      const entry = byName.get(name);
      expect(entry, name).toBeDefined();
      expect(tar.subarray(entry!.dataOffset, entry!.dataOffset + entry!.size).toString()).toBe(content);
    }
    expect(byName.get('block')?.size).toBe(1024);
    expect(byName.get('hardlink')).toMatchObject({ type: 'link', linkname: './small', size: 0 });
    expect(byName.get('longlink')).toMatchObject({ type: 'symlink', linkname: `/${'t'.repeat(150)}` });
  });
});

it('reads large ids written in base-256', async () => {
  const tar = await makeTar(['--format=gnu', '--owner=3000000', '--group=4000000', '--numeric-owner']);
  const entries = await index(tar);
  for (const e of entries) expect([e.uid, e.gid]).toEqual([3000000, 4000000]);
});

it('refuses what is not a tar, and truncated archives', async () => {
  await expect(index(Buffer.from('hello world'.repeat(100)))).rejects.toThrow(/bad header checksum/);
  const tar = await makeTar(['--format=gnu']);
  await expect(index(tar.subarray(0, 700))).rejects.toThrow(TarFormatError);
  await expect(index(Buffer.alloc(0))).rejects.toThrow(/empty/);
});

it('refuses extension headers and paths over the limits', async () => {
  const tar = await makeTar(['--format=pax']);
  await expect(index(tar, { maxExtensionBytes: 16, maxPathBytes: 4096, maxEntries: 100 })).rejects.toThrow(/extension header/);
  await expect(index(tar, { maxExtensionBytes: 1 << 20, maxPathBytes: 100, maxEntries: 100 })).rejects.toThrow(/path longer/);
  await expect(index(tar, { maxExtensionBytes: 1 << 20, maxPathBytes: 4096, maxEntries: 2 })).rejects.toThrow(/more than 2 entries/);
});

it('computes tarsum v1 as Docker defines it (header fields without mtime, then data; sums sorted)', () => {
  const sum = new TarSum();
  sum.beginEntry({ name: 'a', type: 'file', mode: 0o644, uid: 0, gid: 0, size: 1, linkname: '', devmajor: 0, devminor: 0, xattrs: {} });
  sum.update(Buffer.from('x'));
  sum.beginEntry({ name: 'b/', type: 'directory', mode: 0o755, uid: 1, gid: 2, size: 0, linkname: '', devmajor: 0, devminor: 0, xattrs: {} });
  const sha = (s: string) => createHash('sha256').update(s).digest('hex');
  const a = sha('nameamode420uid0gid0size1typeflag0linknameunamegnamedevmajor0devminor0x');
  const b = sha('nameb/mode493uid1gid2size0typeflag5linknameunamegnamedevmajor0devminor0');
  expect(sum.digest()).toBe(`tarsum.v1+sha256:${sha([a, b].sort().join(''))}`);
});
