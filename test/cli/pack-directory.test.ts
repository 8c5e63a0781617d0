/** `baler build` packing a local directory: names that are not UTF-8 are packed as their bytes. */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { packDirectory } from '../../src/cli/spec-inputs.ts';
import { gnuTarNames, listByteTree, makeByteNameTree, runForBytes } from '../support/byte-tree.ts';

let work: string;
let root: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'baler-pack-'));
  root = join(work, 'root');
  await mkdir(root);
  await makeByteNameTree(root);
});
afterAll(async () => rm(work, { recursive: true, force: true }));

it('packs names and link targets as their bytes, sorted by them, the same tar every time', async () => {
  const tar = join(work, 'packed.tar');
  await packDirectory(root, tar);
  const tree = await listByteTree(root);
  // Each directory's children in byte order, depth first (for this tree, its paths in byte order).
  expect(await gnuTarNames(tar)).toEqual(tree.map((e) => (e.type === 'dir' ? `${e.path}/` : e.path)));
  const out = join(work, 'out');
  await mkdir(out);
  const extracted = await runForBytes('tar', ['-C', out, '-xf', tar]);
  expect(extracted.code, extracted.stderr).toBe(0);
  // Hard links are packed as files (the same bytes twice).
  expect(await listByteTree(out)).toEqual(tree.map(({ linkedTo: _, ...entry }) => entry));

  const again = join(work, 'again.tar');
  await packDirectory(root, again);
  const digest = async (path: string) =>
    createHash('sha256')
      .update(await readFile(path))
      .digest('hex');
  expect(await digest(again)).toBe(await digest(tar));
});
