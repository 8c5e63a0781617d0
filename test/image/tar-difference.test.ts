/** The first differing path of two stored tars, read side by side: content, header fields, entries one lacks. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BudgetExceededError } from '../../src/budget.ts';
import type { Digest } from '../../src/digest.ts';
import { firstTarDifference } from '../../src/image/tar-difference.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';
import { END_OF_ARCHIVE, entry, type RawHeader } from '../support/raw-tar.ts';

let dir: string;
let store: FsBlobStore;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'baler-tar-difference-'));
  store = await FsBlobStore.create(dir);
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

type Entry = [RawHeader, string?];
const base: Entry[] = [[{ name: 'etc/', type: '5' }], [{ name: 'etc/hosts' }, 'localhost\n'], [{ name: 'out/', type: '5' }], [{ name: 'out/random' }, '0123456789abcdef'], [{ name: 'zz' }, 'last']];

async function stored(entries: Entry[]): Promise<Digest> {
  const tar = Buffer.concat([...entries.map(([h, data = '']) => entry({ ...h, size: h.type === '5' ? 0 : Buffer.byteLength(data) }, Buffer.from(data))), END_OF_ARCHIVE]);
  return (await store.put(Readable.from([tar]))).digest;
}

function changed(index: number, change: (e: Entry) => Entry): Entry[] {
  return base.map((e, i) => (i === index ? change(e) : e));
}

describe('firstTarDifference', () => {
  it('the same blob: no difference', async () => {
    const a = await stored(base);
    expect(await firstTarDifference(store, a, a)).toBeNull();
  });

  it('content of the same size: the path, content', async () => {
    const a = await stored(base);
    const b = await stored(changed(3, ([h]) => [h, 'fedcba9876543210']));
    expect(await firstTarDifference(store, a, b)).toEqual({ path: '/out/random', what: 'content' });
  });

  it('a size that differs is content too', async () => {
    const b = await stored(changed(1, ([h]) => [h, 'localhost.localdomain\n']));
    expect(await firstTarDifference(store, await stored(base), b)).toEqual({ path: '/etc/hosts', what: 'content' });
  });

  it('mode, owner, mtime, link target', async () => {
    const a = await stored(base);
    expect(await firstTarDifference(store, a, await stored(changed(1, ([h, d]) => [{ ...h, mode: 0o600 }, d])))).toEqual({ path: '/etc/hosts', what: 'mode' });
    expect(await firstTarDifference(store, a, await stored(changed(2, ([h, d]) => [{ ...h, uid: 1000 }, d])))).toEqual({ path: '/out', what: 'owner' });
    expect(await firstTarDifference(store, a, await stored(changed(4, ([h, d]) => [{ ...h, mtime: 1 }, d])))).toEqual({ path: '/zz', what: 'mtime' });
    const link = (target: string): Entry[] => [...base, [{ name: 'zzz', type: '2', linkname: target }]];
    expect(await firstTarDifference(store, await stored(link('/a')), await stored(link('/b')))).toEqual({ path: '/zzz', what: 'link' });
  });

  it('an entry the rebuild lacks is missing; one only the rebuild has is added', async () => {
    const a = await stored(base);
    const without = await stored(base.filter((_, i) => i !== 3));
    expect(await firstTarDifference(store, a, without)).toEqual({ path: '/out/random', what: 'missing' });
    expect(await firstTarDifference(store, without, a)).toEqual({ path: '/out/random', what: 'added' });
    // At the end of one tar.
    const shorter = await stored(base.slice(0, 4));
    expect(await firstTarDifference(store, a, shorter)).toEqual({ path: '/zz', what: 'missing' });
    expect(await firstTarDifference(store, shorter, a)).toEqual({ path: '/zz', what: 'added' });
  });

  it('only the first difference is named, in entry order', async () => {
    const b = await stored(changed(4, ([h]) => [h, 'LAST']).map((e, i) => (i === 1 ? [{ ...e[0], mode: 0o600 }, e[1]] : e)));
    expect(await firstTarDifference(store, await stored(base), b)).toEqual({ path: '/etc/hosts', what: 'mode' });
  });

  it('the same entries in other bytes: encoding, no path', async () => {
    const a = await stored(base);
    const tar = Buffer.concat([...base.map(([h, data = '']) => entry({ ...h, size: h.type === '5' ? 0 : Buffer.byteLength(data) }, Buffer.from(data))), END_OF_ARCHIVE, END_OF_ARCHIVE]);
    const b = (await store.put(Readable.from([tar]))).digest;
    expect(await firstTarDifference(store, a, b)).toEqual({ what: 'encoding' });
  });

  it('is bounded by the tar budgets', async () => {
    const a = await stored(base);
    const b = await stored(changed(4, ([h]) => [h, 'LAST']));
    await expect(firstTarDifference(store, a, b, { maxEntries: 3 })).rejects.toBeInstanceOf(BudgetExceededError);
  });
});
