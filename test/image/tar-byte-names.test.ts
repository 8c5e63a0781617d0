/**
 * Names that are not UTF-8 through the tar reader, the tar writer and the layer tree, checked
 * against GNU tar and Python's tarfile (the writers and readers we did not write).
 */
import { isUtf8 } from 'node:buffer';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FsTree } from '../../src/image/fs-tree.ts';
import type { LayerEntry } from '../../src/image/layer-entry.ts';
import { indexTar, type IndexedTarEntry } from '../../src/image/tar-index.ts';
import { decodeName, encodeName } from '../../src/image/tar-name.ts';
import { TarStreamWriter, type TarWriteHeader } from '../../src/image/tar-writer.ts';
import { TarSum } from '../../src/image/tarsum.ts';
import { bytes, gnuTarNames, makeByteNameTree, showBytes, SPLIT_PATH } from '../support/byte-tree.ts';
import { run } from '../support/run.ts';

let work: string;
let root: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'baler-byte-names-'));
  root = join(work, 'root');
  await mkdir(root);
  await makeByteNameTree(root);
});
afterAll(async () => rm(work, { recursive: true, force: true }));

async function index(tar: Buffer): Promise<IndexedTarEntry[]> {
  const out: IndexedTarEntry[] = [];
  for await (const entry of indexTar(Readable.from([tar]))) out.push(entry);
  return out;
}

async function writeTar(entries: Array<[TarWriteHeader, Buffer?]>): Promise<Buffer> {
  const writer = new TarStreamWriter();
  const out = buffer(writer.stream);
  for (const [header, data] of entries) await writer.add(header, data);
  await writer.finish();
  return out;
}

async function tarFile(name: string, make: (path: string) => Promise<{ code: number; stderr: string }>): Promise<{ path: string; tar: Buffer }> {
  const path = join(work, name);
  const result = await make(path);
  expect(result.code, result.stderr).toBe(0);
  return { path, tar: await readFile(path) };
}

const PYTHON_TAR = 'import sys, tarfile\nwith tarfile.open(sys.argv[2], "w", format=getattr(tarfile, sys.argv[3])) as t: t.add(sys.argv[1], arcname=".")';

const WRITERS: Record<string, (path: string) => Promise<{ code: number; stderr: string }>> = {
  'GNU tar --format=posix': (path) => run('tar', ['--format=posix', '-C', root, '-cf', path, '.']),
  'GNU tar --format=gnu': (path) => run('tar', ['--format=gnu', '-C', root, '-cf', path, '.']),
  // ustar splits SPLIT_PATH at its `/` into prefix and name, raw bytes in both; it cannot hold the other long ones.
  'GNU tar --format=ustar': (path) => run('tar', ['--format=ustar', '--exclude=long*', '-C', root, '-cf', path, '.']),
  'Python tarfile PAX_FORMAT': (path) => run('python3', ['-c', PYTHON_TAR, root, path, 'PAX_FORMAT']),
  'Python tarfile GNU_FORMAT': (path) => run('python3', ['-c', PYTHON_TAR, root, path, 'GNU_FORMAT']),
};

describe.each(Object.keys(WRITERS))('the index reads names as bytes: %s', (writer) => {
  it('gives every name and link target as the bytes GNU tar lists, two names differing in one byte as two', async () => {
    const { path, tar } = await tarFile(`${writer.replace(/\W+/g, '-')}.tar`, WRITERS[writer] as (path: string) => Promise<{ code: number; stderr: string }>);
    const entries = await index(tar);
    expect(entries.map((e) => showBytes(encodeName(e.name)))).toEqual(await gnuTarNames(path));
    const byName = new Map(entries.map((e) => [showBytes(encodeName(e.name)).replace(/^\.\//, '').replace(/\/$/, ''), e]));
    expect(byName.get('x\\xff')?.name).not.toBe(byName.get('x\\xfe')?.name);
    expect(showBytes(encodeName(byName.get('sym\\xe9')?.linkname ?? ''))).toBe('caf\\xe9/men\\xfa');
    const hard = [byName.get('hard\\xfa'), byName.get('x\\xff')].find((e) => e?.type === 'link');
    expect(showBytes(encodeName(hard?.linkname ?? '')).replace(/^\.\//, '')).toMatch(/^(hard\\xfa|x\\xff)$/);
    if (!writer.includes('ustar')) expect(showBytes(encodeName(byName.get('longsym')?.linkname ?? ''))).toBe('t\\xe9'.repeat(60));
    expect(byName.get('caf\\xc3\\xa9')?.name).toMatch(/café$/);
    expect(byName.get(SPLIT_PATH)?.size).toBe('split\n'.length);
  });
});

describe('the writer writes names as bytes', () => {
  const name = (text: string) => decodeName(bytes(text));
  const base = { uid: 0, gid: 0, mtime: 0, mode: 0o644 };

  it('writes what GNU tar and Python read back as the same bytes, hdrcharset=BINARY only where not UTF-8', async () => {
    const long = `long\\xe9/${'n\\xff'.repeat(60)}`;
    const tar = await writeTar([
      [{ ...base, name: name('caf\\xe9/'), type: 'directory', size: 0 }],
      [{ ...base, name: name('caf\\xe9/men\\xfa'), type: 'file', size: 2 }, Buffer.from('hi')],
      [{ ...base, name: name('caf\\xc3\\xa9'), type: 'file', size: 0 }],
      [{ ...base, name: name(long), type: 'file', size: 0 }],
      [{ ...base, name: name('sym'), type: 'symlink', size: 0, linkname: name('t\\xe9') }],
      [{ ...base, name: name('x\\xfe'), type: 'link', size: 0, linkname: name('caf\\xe9/men\\xfa') }],
    ]);
    const path = join(work, 'written.tar');
    await writeFile(path, tar);
    const expected = ['caf\\xe9/', 'caf\\xe9/men\\xfa', 'caf\\xc3\\xa9', long, 'sym', 'x\\xfe'];
    expect(await gnuTarNames(path)).toEqual(expected);
    const python = await run('python3', ['-c', 'import os, sys, tarfile\nfor m in tarfile.open(sys.argv[1]): print(os.fsencode(m.name).hex(), os.fsencode(m.linkname).hex())', path]);
    expect(python.code, python.stderr).toBe(0);
    const lines = python.stdout
      .trim()
      .split('\n')
      .map((line) => line.split(' ').map((hex) => showBytes(Buffer.from(hex, 'hex'))));
    expect(lines.map(([n]) => n)).toEqual(expected.map((n) => n.replace(/\/$/, '')));
    expect(lines[4]?.[1]).toBe('t\\xe9');
    expect(lines[5]?.[1]).toBe('caf\\xe9/men\\xfa');
    // Our own reader, and the PAX records as written: BINARY for the names that are not UTF-8 only.
    expect((await index(tar)).map((e) => showBytes(encodeName(e.name)))).toEqual(expected);
    expect(tar.toString('latin1').match(/hdrcharset=BINARY/g)).toHaveLength(5);
    const utf8Only = await writeTar([[{ ...base, name: 'café', type: 'file', size: 0 }]]);
    expect(utf8Only.includes('hdrcharset')).toBe(false);
    expect(utf8Only.includes(Buffer.from('path=café\n'))).toBe(true);
  });

  it('round-trips random byte names and link targets through writer and reader', async () => {
    const component = fc.uint8Array({ minLength: 1, maxLength: 12 }).map((b) => Buffer.from(b.filter((x) => x !== 0 && x !== 0x2f)));
    const names = fc.array(
      component.filter((b) => b.length > 0 && !b.equals(Buffer.from('.')) && !b.equals(Buffer.from('..'))),
      { minLength: 1, maxLength: 3 },
    );
    await fc.assert(
      fc.asyncProperty(names, fc.uint8Array({ minLength: 1, maxLength: 150 }), async (parts, target) => {
        const path = Buffer.concat(parts.flatMap((p, i) => (i === 0 ? [p] : [Buffer.from('/'), p])));
        const link = Buffer.from(target.filter((x) => x !== 0));
        const tar = await writeTar([[{ ...base, name: decodeName(path), type: 'symlink', size: 0, linkname: decodeName(link) }]]);
        const [entry] = await index(tar);
        expect(encodeName(entry?.name ?? '')).toEqual(path);
        expect(encodeName(entry?.linkname ?? '')).toEqual(link);
        // A name that is not UTF-8 is not ASCII either, so it is in a PAX record, which says BINARY.
        expect(tar.includes('hdrcharset=BINARY')).toBe(!isUtf8(path) || !isUtf8(link));
      }),
      { numRuns: 500 },
    );
  });

  it('keeps xattr names that are not UTF-8 (SCHILY.xattr. keys are bytes too)', async () => {
    const xattr = name('user.\\xe9t\\xe9');
    const tar = await writeTar([[{ ...base, name: 'f', type: 'file', size: 0, xattrs: { [xattr]: 'v', 'user.a': 'w' } }]]);
    expect(tar.includes(Buffer.concat([Buffer.from(' SCHILY.xattr.'), bytes('user.\\xe9t\\xe9'), Buffer.from('=v\n')]))).toBe(true);
    const [entry] = await index(tar);
    expect(entry?.xattrs).toEqual({ [xattr]: 'v', 'user.a': 'w' });
  });

  it('writes names that are UTF-8 byte for byte as before names were bytes (the same archive, the same tarsum)', async () => {
    // Digests of what the writer and TarSum gave for these entries before this change (commit 6580ea9).
    const headers: TarWriteHeader[] = [
      { ...base, mtime: 1234567890, name: 'bin/', type: 'directory', size: 0 },
      { ...base, mtime: 1234567890, name: 'grüße/日本.txt', type: 'file', size: 0, xattrs: { 'user.ünï': 'v', 'security.capability': '\x01\x00' } },
      { ...base, mtime: 1234567890, name: `${'a'.repeat(80)}/${'b'.repeat(80)}/${'c'.repeat(120)}`, type: 'file', size: 0 },
      { ...base, mtime: 1234567890, name: 'é'.repeat(70), type: 'symlink', size: 0, linkname: `ziel-${'ü'.repeat(60)}` },
      { ...base, mtime: 1234567890, name: 'link', type: 'link', size: 0, linkname: 'grüße/日本.txt' },
    ];
    const tar = await writeTar(headers.map((h) => [h]));
    expect(createHash('sha256').update(tar).digest('hex')).toBe('11db4feb6da4571bbec3b31576090e3b0df71b9d4a84c258cc0fb26da72e9a2c');
    const sum = new TarSum();
    for (const h of headers) sum.beginEntry({ linkname: '', devmajor: 0, devminor: 0, xattrs: {}, ...h });
    expect(sum.digest()).toBe('tarsum.v1+sha256:560b9f9571270dcb1ffbe0d6c3b244bc173eb760636c32560433cef03a267c65');
  });
});

it("puts a layer tree in GNU tar's --sort=name order of its names' bytes, escaped bytes included", () => {
  const PIECES = ['a', '-', '.', '\\xff', '\\xfe', '\\xc3', '\\xc3\\xa9', '\\xf0\\x9f\\x98\\x80', '\\xef\\xbd\\x9e', '\\xee\\x80\\x80'].map(bytes);
  const component = fc.array(fc.constantFrom(...PIECES), { minLength: 1, maxLength: 3 }).map((parts) => Buffer.concat(parts));
  const path = fc.array(component, { minLength: 1, maxLength: 3 }).map((parts) => Buffer.concat(parts.flatMap((p, i) => (i === 0 ? [p] : [Buffer.from('/'), p]))));
  fc.assert(
    fc.property(fc.array(path, { maxLength: 40 }), (paths) => {
      const tree = new FsTree({ mode: 0o755, uid: 0, gid: 0 });
      const file = (p: Buffer): LayerEntry => ({ path: decodeName(p), type: 'file', mode: 0o644, uid: 0, gid: 0, size: 0, linkname: '', devmajor: 0, devminor: 0, xattrs: {} });
      for (const p of paths) tree.add(file(p));
      const written = [...tree.sortedEntries()].map((e) => encodeName(e.path));
      // Tree order: the path's bytes with '/' below every name byte (a directory's subtree first).
      const treeKey = (b: Buffer) => Buffer.from(b.map((byte) => (byte === 0x2f ? 0 : byte)));
      const sorted = [...written].sort((a, b) => Buffer.compare(treeKey(a), treeKey(b)));
      expect(written).toEqual(sorted);
      expect(new Set(written.map((b) => b.toString('hex'))).size).toBe(written.length);
    }),
    { numRuns: 500 },
  );
});
