/**
 * A fixture tar made by GNU tar with the awkward cases (hard links, an absolute symlink, a
 * 150-byte path, a non-ASCII name, setuid, an empty dir, a 0-byte file, a file owned by uid
 * 1234) goes through the real build code; the resulting layer is read back by GNU tar (which
 * we did not write) and checked entry by entry.
 */
import { createReadStream } from 'node:fs';
import { chown, link, lstat, mkdir, mkdtemp, readFile, readlink, rm, symlink, writeFile, chmod, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_TENANT } from '../../src/builds/tenant.ts';
import { runBuild } from '../../src/builds/run-build.ts';
import { resolveSpec, type BuildSpec } from '../../src/builds/spec.ts';
import type { Digest } from '../../src/digest.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';
import { run } from '../support/run.ts';
import { extractLayer, listTar } from '../support/tar-tools.ts';

const LONG_PATH = `long/${'x'.repeat(145)}`; // 150 bytes
const UNICODE = 'unicode/grüße-日本.txt';
const CREATED = '2021-03-04T05:06:07Z';
const CREATED_EPOCH = Date.parse(CREATED) / 1000;

let work: string;
let store: FsBlobStore;
const fixtures: Record<'gnu' | 'pax', Digest> = {} as Record<'gnu' | 'pax', Digest>;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'baler-fixture-'));
  store = await FsBlobStore.create(join(work, 'store'));
  const root = join(work, 'root');
  await mkdir(join(root, 'app'), { recursive: true });
  await writeFile(join(root, 'app/data.bin'), 'shared data\n');
  await link(join(root, 'app/data.bin'), join(root, 'app/hard'));
  // Sorts before its target: the layer must still only link back to an earlier entry.
  await link(join(root, 'app/data.bin'), join(root, 'aaa-first-link'));
  await symlink('/etc/passwd', join(root, 'app/abs-link'));
  await mkdir(join(root, 'long'));
  await writeFile(join(root, LONG_PATH), 'long path\n');
  await mkdir(join(root, 'unicode'));
  await writeFile(join(root, UNICODE), 'non-ascii\n');
  await mkdir(join(root, 'bin'));
  await writeFile(join(root, 'bin/suid'), '#!/bin/sh\n');
  await chmod(join(root, 'bin/suid'), 0o4755);
  await mkdir(join(root, 'empty'));
  await chmod(join(root, 'empty'), 0o700);
  await writeFile(join(root, 'zero'), '');
  await mkdir(join(root, 'owned'));
  await writeFile(join(root, 'owned/file'), 'mine\n');
  await chown(join(root, 'owned/file'), 1234, 2345);
  await utimes(join(root, 'zero'), 1e9, 1e9);

  for (const format of ['gnu', 'pax'] as const) {
    const tarPath = join(work, `fixture-${format}.tar`);
    const tar = await run('tar', [`--format=${format}`, '-C', root, '-cf', tarPath, '.']);
    expect(tar.code, tar.stderr).toBe(0);
    fixtures[format] = (await store.put(createReadStream(tarPath))).digest;
  }
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

async function buildLayer(spec: Omit<BuildSpec, 'name'>): Promise<string> {
  const result = await runBuild(resolveSpec({ name: 'fixture', compression: 'none', ...spec }, new Date()), {
    store,
    tenant: DEFAULT_TENANT,
    allowDevices: false,
    vm: { run: () => Promise.reject(new Error('no VM step in these builds')) },
    loadBuildImage: () => Promise.reject(new Error('no base image in these builds')),
  });
  const diffId = result.diffIds[0] as Digest;
  const path = join(work, `layer-${diffId.slice(7, 19)}.tar`);
  const { pipeline } = await import('node:stream/promises');
  const { createWriteStream } = await import('node:fs');
  await pipeline(await store.open(diffId), createWriteStream(path));
  return path;
}

describe.each(['gnu', 'pax'] as const)('a %s-format fixture tar', (format) => {
  it('comes out exactly as specified, owners preserved', async () => {
    const layer = await buildLayer({ contents: [{ tar: fixtures[format], preserveOwners: true }], created: CREATED });
    const entries = await listTar(layer);
    const byName = new Map(entries.map((e) => [e.name, e]));

    // Sorted bytewise, parents before children, no root entry, directories with a slash.
    const names = entries.map((e) => e.name);
    expect(names).toEqual([...names].sort((a, b) => Buffer.compare(Buffer.from(a.replace(/\/$/, '')), Buffer.from(b.replace(/\/$/, '')))));
    expect(names).not.toContain('./');
    for (const e of entries) expect(e.mtime).toBe(CREATED_EPOCH);
    for (const e of entries) expect([e.uname, e.gname]).toEqual(['', '']);

    // Hard links: the first path in order holds the data, the others link back to it.
    expect(byName.get('aaa-first-link')).toMatchObject({ type: 'file', size: 12 });
    expect(byName.get('app/data.bin')).toMatchObject({ type: 'link', linkname: 'aaa-first-link' });
    expect(byName.get('app/hard')).toMatchObject({ type: 'link', linkname: 'aaa-first-link' });
    expect(byName.get('app/abs-link')).toMatchObject({ type: 'symlink', linkname: '/etc/passwd' });
    expect(byName.get(LONG_PATH)).toMatchObject({ type: 'file', size: 10 });
    expect(byName.get(UNICODE)).toMatchObject({ type: 'file', size: 10 });
    expect(byName.get('bin/suid')).toMatchObject({ type: 'file', mode: 0o4755 });
    expect(byName.get('empty/')).toMatchObject({ type: 'directory', mode: 0o700 });
    expect(byName.get('zero')).toMatchObject({ type: 'file', size: 0 });
    expect(byName.get('owned/file')).toMatchObject({ uid: 1234, gid: 2345 });
    expect(byName.get('app/')).toMatchObject({ uid: 0, gid: 0 });

    // GNU tar extracts it to the same tree: links share an inode, owners and modes hold.
    const dir = await extractLayer(layer);
    const first = await lstat(join(dir, 'aaa-first-link'));
    expect((await lstat(join(dir, 'app/data.bin'))).ino).toBe(first.ino);
    expect((await lstat(join(dir, 'app/hard'))).ino).toBe(first.ino);
    expect(first.nlink).toBe(3);
    expect(await readFile(join(dir, 'app/hard'), 'utf8')).toBe('shared data\n');
    expect(await readlink(join(dir, 'app/abs-link'))).toBe('/etc/passwd');
    expect(await readFile(join(dir, LONG_PATH), 'utf8')).toBe('long path\n');
    expect(await readFile(join(dir, UNICODE), 'utf8')).toBe('non-ascii\n');
    expect((await lstat(join(dir, 'bin/suid'))).mode & 0o7777).toBe(0o4755);
    expect((await lstat(join(dir, 'zero'))).size).toBe(0);
    const owned = await lstat(join(dir, 'owned/file'));
    expect([owned.uid, owned.gid]).toEqual([1234, 2345]);
    await rm(dir, { recursive: true, force: true });
  });

  it('gives every entry the spec uid/gid by default (as in nixpkgs dockerTools)', async () => {
    const layer = await buildLayer({ contents: [{ tar: fixtures[format] }], uid: 1234, gid: 1234, created: CREATED });
    const entries = await listTar(layer);
    expect(entries.length).toBeGreaterThan(10);
    for (const e of entries) expect([e.name, e.uid, e.gid]).toEqual([e.name, 1234, 1234]);
  });
});

it('carries ids too large for ustar in PAX records', async () => {
  const layer = await buildLayer({ contents: [{ text: 'x', to: '/f' }], uid: 3_000_000, gid: 4_000_000 });
  const dir = await extractLayer(layer);
  const info = await lstat(join(dir, 'f'));
  expect([info.uid, info.gid]).toEqual([3_000_000, 4_000_000]);
  await rm(dir, { recursive: true, force: true });
});

describe('layer determinism', () => {
  it('writes identical bytes for the same input, whatever the tar format it came in', async () => {
    const a = await buildLayer({ contents: [{ tar: fixtures.gnu, preserveOwners: true }], created: CREATED });
    const b = await buildLayer({ contents: [{ tar: fixtures.pax, preserveOwners: true }], created: CREATED });
    const again = await buildLayer({ contents: [{ tar: fixtures.gnu, preserveOwners: true }], created: CREATED });
    const sha = async (p: string) => (await run('sha256sum', [p])).stdout.split(' ')[0];
    expect(await sha(a)).toBe(await sha(again));
    // GNU and PAX fixtures differ only in framing (and PAX keeps sub-second times we drop).
    expect(await sha(a)).toBe(await sha(b));
  });

  it('merges contents in order, later entries winning, with parents created', async () => {
    const layer = await buildLayer({
      contents: [
        { text: 'first\n', to: '/etc/motd' },
        { tar: fixtures.gnu },
        { text: 'second\n', to: '/etc/motd', mode: '0600' },
        { dir: '/var/empty/deep', mode: '0711' },
        { symlink: '/bin/sh', target: 'busybox' },
        { text: 'replaces a directory\n', to: '/long' },
      ],
    });
    const entries = await listTar(layer);
    const byName = new Map(entries.map((e) => [e.name, e]));
    expect(byName.get('etc/motd')).toMatchObject({ type: 'file', size: 7, mode: 0o600 });
    expect(byName.get('var/')).toMatchObject({ type: 'directory', mode: 0o755 });
    expect(byName.get('var/empty/deep/')).toMatchObject({ type: 'directory', mode: 0o711 });
    expect(byName.get('bin/sh')).toMatchObject({ type: 'symlink', linkname: 'busybox' });
    expect(byName.get('long')).toMatchObject({ type: 'file' });
    expect(entries.some((e) => e.name.startsWith('long/'))).toBe(false);
  });
});
