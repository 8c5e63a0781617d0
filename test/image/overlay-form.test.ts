/**
 * Whiteouts in both directions, on tars made by GNU tar from real directories (overlayfs'
 * forms made with mknod and setfattr, as root), without a VM.
 */
import { createReadStream } from 'node:fs';
import { link, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Digest } from '../../src/digest.ts';
import { layerTreeFromUpper, overlayLowerTree } from '../../src/image/overlay-form.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';
import { run } from '../support/run.ts';

let work: string;
let store: FsBlobStore;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'baler-overlay-'));
  store = await FsBlobStore.create(join(work, 'store'));
});
afterAll(async () => rm(work, { recursive: true, force: true }));

async function tarOf(dir: string): Promise<Digest> {
  const path = `${dir}.tar`;
  const result = await run('tar', ['--xattrs', '--xattrs-include=*', '--numeric-owner', '-C', dir, '-cf', path, '.']);
  expect(result.code, result.stderr).toBe(0);
  return (await store.put(createReadStream(path))).digest;
}

const sh = async (script: string) => {
  const result = await run('sh', ['-ec', script]);
  expect(result.code, result.stderr).toBe(0);
};

it('turns base layers into overlay lower dirs: .wh. files become 0/0 devices, opaque markers an xattr', async () => {
  const bottom = join(work, 'bottom');
  await mkdir(join(bottom, 'etc'), { recursive: true });
  await writeFile(join(bottom, 'etc/gone'), 'x');
  await writeFile(join(bottom, 'etc/kept'), 'y');
  await link(join(bottom, 'etc/kept'), join(bottom, 'etc/kept-link'));
  const top = join(work, 'top');
  await mkdir(join(top, 'etc'), { recursive: true });
  await mkdir(join(top, 'var/cache'), { recursive: true });
  await writeFile(join(top, 'etc/.wh.gone'), '');
  await writeFile(join(top, 'var/cache/.wh..wh..opq'), '');
  await writeFile(join(top, 'var/cache/new'), 'z');

  const tree = await overlayLowerTree([await tarOf(bottom), await tarOf(top)], store);
  const entries = new Map([...tree.sortedEntries()].map((e) => [e.path, e]));
  expect(entries.get('0/etc/gone')).toMatchObject({ type: 'file' });
  expect(entries.get('0/etc/kept-link')?.type === 'link' || entries.get('0/etc/kept')?.type === 'link').toBe(true);
  expect(entries.get('1/etc/gone')).toMatchObject({ type: 'character-device', devmajor: 0, devminor: 0 });
  expect(entries.has('1/etc/.wh.gone')).toBe(false);
  expect(entries.get('1/var/cache')?.xattrs).toEqual({ 'trusted.overlay.opaque': 'y' });
  expect(entries.has('1/var/cache/.wh..wh..opq')).toBe(false);
  expect(entries.get('1/var/cache/new')).toMatchObject({ type: 'file', size: 1 });
});

it('turns an overlay upper dir into layer entries: devices and their hard links become .wh. files', async () => {
  const upper = join(work, 'upper');
  await sh(`
    mkdir -p ${upper}/etc ${upper}/some/dir ${upper}/bin
    mknod ${upper}/etc/deleted c 0 0
    ln ${upper}/etc/deleted ${upper}/etc/also-deleted
    setfattr -n trusted.overlay.opaque -v y ${upper}/some/dir
    setfattr -n trusted.overlay.origin -v 0x00fb ${upper}/etc
    touch ${upper}/some/dir/new
    printf x > ${upper}/bin/ping
    setfattr -n security.capability -v 0x0100000200040000000000000000000000000000 ${upper}/bin/ping
    setfattr -n user.note -v hello ${upper}/bin/ping
  `);
  const tree = await layerTreeFromUpper(await tarOf(upper), store, { mode: 0o755, uid: 0, gid: 0 });
  const entries = new Map([...tree.sortedEntries()].map((e) => [e.path, e]));
  expect(entries.get('etc/.wh.deleted')).toMatchObject({ type: 'file', size: 0 });
  expect(entries.get('etc/.wh.also-deleted')).toMatchObject({ type: 'file', size: 0 });
  expect(entries.has('etc/deleted')).toBe(false);
  expect(entries.get('etc')?.xattrs).toEqual({});
  expect(entries.get('some/dir')?.xattrs).toEqual({});
  expect(entries.get('some/dir/.wh..wh..opq')).toMatchObject({ type: 'file', size: 0 });
  expect(entries.get('some/dir/new')).toMatchObject({ type: 'file' });
  const ping = entries.get('bin/ping');
  expect(Buffer.from(ping?.xattrs['security.capability'] ?? '', 'latin1').toString('hex')).toBe('0100000200040000000000000000000000000000');
  expect(ping?.xattrs['user.note']).toBe('hello');
});
