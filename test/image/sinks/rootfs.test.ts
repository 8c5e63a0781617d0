/**
 * The `rootfs` sink (dockerTools' exportImage): the flattened filesystem computed from the
 * stored layers. Layers here are written by GNU tar (the fixture image) and by Python's
 * tarfile (for entry orders and links GNU tar would not produce); the output is read back
 * by GNU tar. The comparison with `docker export` is in engines.test.ts.
 */
import { createReadStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BudgetExceededError } from '../../../src/budget.ts';
import type { Digest } from '../../../src/digest.ts';
import { DEFAULT_LAYER_BUDGETS } from '../../../src/image/build-usage.ts';
import { LayerInputError } from '../../../src/image/layer-entry.ts';
import { flattenLayers, writeRootfs } from '../../../src/image/sinks/rootfs.ts';
import { plannedTar } from '../../../src/image/sinks/tar-plan.ts';
import { FsBlobStore } from '../../../src/store/fs-blob-store.ts';
import { run } from '../../support/run.ts';
import { listTar } from '../../support/tar-tools.ts';
import { CREATED_EPOCH, LONG_PATH, UNICODE, makeInputs, makeTestImage, saveOutput, type Inputs, type TestImage } from './fixture.ts';
import { extract, listTree, type ListedFile } from './tree-listing.ts';

let inputs: Inputs;
let image: TestImage;
let rootfs: string;
let tree: Map<string, ListedFile>;

beforeAll(async () => {
  inputs = await makeInputs();
  image = await makeTestImage(inputs, join(inputs.dir, 'store'));
  rootfs = join(inputs.dir, 'rootfs.tar');
  const out = await writeRootfs(image.image, { store: image.store });
  expect(out.mediaType).toBe('application/x-tar');
  await saveOutput(out, rootfs);
  tree = await listTree(await extract(rootfs, inputs.dir));
});

afterAll(async () => {
  if (inputs) await rm(inputs.dir, { recursive: true, force: true });
});

const sha = (text: string) => run('sh', ['-c', `printf '%s' '${text}' | sha256sum`]).then((r) => r.stdout.split(' ')[0]);

describe('rootfs of the three-layer image', () => {
  it('applies whiteouts, opaque directories and replacements; whiteout files are gone', async () => {
    const paths = [...tree.keys()];
    expect(paths.filter((p) => p.includes('.wh.'))).toEqual([]);
    expect(paths.filter((p) => p.startsWith('data/'))).toEqual(['data/keep']);
    expect(paths.filter((p) => p.startsWith('opq/'))).toEqual(['opq/new']);
    expect(paths.filter((p) => p.startsWith('gonedir'))).toEqual([]);
    expect(tree.get('replaced-dir')).toMatchObject({ type: 'file', content: await sha('now a file\n') });
    expect(paths.filter((p) => p.startsWith('replaced-dir/'))).toEqual([]);
    expect(tree.get('etc/greeting')).toMatchObject({ type: 'file', mode: 0o640, content: await sha('v2\n') });
    expect(tree.get('newdir')).toMatchObject({ type: 'directory', mode: 0o711 });
  });

  it('keeps hard links: a link keeps its data when a later layer replaces the path it was made through', async () => {
    expect(tree.get('app/data.bin')).toMatchObject({ content: await sha('new data\n') });
    expect(tree.get('app/data.bin')?.links).toBeUndefined();
    expect(tree.get('app/hard')).toMatchObject({ content: await sha('old data\n'), links: ['aaa-link', 'app/hard'] });
    expect(tree.get('hl/zz-target')).toMatchObject({ content: await sha('linked\n'), links: ['hl/aa-link', 'hl/zz-target'] });
    // In the tar, the first path of a group holds the data and the others link back to it.
    const entries = new Map((await listTar(rootfs)).map((e) => [e.name, e]));
    expect(entries.get('aaa-link')).toMatchObject({ type: 'file', size: 9 });
    expect(entries.get('app/hard')).toMatchObject({ type: 'link', linkname: 'aaa-link' });
  });

  it("keeps every entry's own metadata: modes, owners (PAX-sized too), times, xattrs, fifos, long and non-ASCII names", async () => {
    expect(tree.get('bin/suid')).toMatchObject({ mode: 0o4755, uid: 0, gid: 0 });
    expect(tree.get('owned/file')).toMatchObject({ mode: 0o600, uid: 1234, gid: 2345 });
    expect(tree.get('big/file')).toMatchObject({ uid: 3_000_000, gid: 3_000_000 });
    expect(tree.get('bin/capped')?.xattrs).toEqual(['security.capability=0x0100000200200000000000000000000000000000']);
    expect(tree.get('hl/fifo')).toMatchObject({ type: 'fifo' });
    expect(tree.get('bin/abs-link')).toMatchObject({ type: 'symlink', content: '/etc/greeting' });
    expect(tree.get('bin/sh')).toMatchObject({ type: 'symlink', content: 'busybox' });
    expect(tree.get(LONG_PATH)).toMatchObject({ content: await sha('long\n') });
    expect(tree.get(UNICODE)).toMatchObject({ content: await sha('non-ascii\n') });
    for (const [path, entry] of tree) expect([path, entry.mtime]).toEqual([path, CREATED_EPOCH]);
    const busybox = await run('sha256sum', ['/bin/busybox']);
    expect(tree.get('bin/busybox')).toMatchObject({ mode: 0o755, content: busybox.stdout.split(' ')[0] });
  });

  it('is sorted, has no root entry, and is byte-identical when made again or from another store', async () => {
    const names = (await listTar(rootfs)).map((e) => e.name.replace(/\/$/, ''));
    expect(names).toEqual([...names].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))));
    expect(names).not.toContain('.');
    expect(names).not.toContain('');
    const first = await saveOutput(await writeRootfs(image.image, { store: image.store }), join(inputs.dir, 'a.tar'));
    const other = await makeTestImage(inputs, join(inputs.dir, 'store-2'));
    const second = await saveOutput(await writeRootfs(other.image, { store: other.store }), join(inputs.dir, 'b.tar'));
    expect(second.digest).toBe(first.digest);
    expect((await saveOutput(await writeRootfs(image.image, { store: image.store }), join(inputs.dir, 'c.tar'))).digest).toBe(first.digest);
  });
});

/** Layer tars Python's tarfile writes in exactly the order given (what GNU tar will not do). */
interface Crafted {
  name: string;
  type?: 'file' | 'dir' | 'link' | 'symlink';
  data?: string;
  target?: string;
  mode?: number;
}

const PYTHON_TAR = `
import json, sys, tarfile, io
for path, entries in json.loads(sys.argv[1]):
    with tarfile.open(path, 'w', format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            info = tarfile.TarInfo(e['name'])
            kind = e.get('type', 'file')
            info.mode = e.get('mode', 0o755 if kind == 'dir' else 0o644)
            info.mtime = 1000
            data = None
            if kind == 'dir': info.type = tarfile.DIRTYPE
            elif kind == 'link': info.type = tarfile.LNKTYPE; info.linkname = e['target']
            elif kind == 'symlink': info.type = tarfile.SYMTYPE; info.linkname = e['target']
            else:
                data = e.get('data', '').encode(); info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
`;

/** Each case: its layers, bottom first. */
const CASES = {
  linkGroupWhitedOut: [
    [
      { name: 'a', type: 'dir' },
      { name: 'a/x', data: 'data' },
      { name: 'b', type: 'dir' },
      { name: 'b/y', type: 'link', target: 'a/x' },
    ],
    [{ name: 'a/.wh.x' }],
  ],
  whiteoutOrder: [
    [
      { name: 'foo', data: 'old' },
      { name: 'd', type: 'dir' },
      { name: 'd/old', data: 'o' },
      { name: 'd/sub/deep', data: 'x' },
    ],
    [{ name: 'foo', data: 'newer' }, { name: '.wh.foo' }, { name: 'd', type: 'dir', mode: 0o700 }, { name: 'd/new', data: 'nn' }, { name: 'd/.wh..wh..opq' }],
  ],
  crossLayerLink: [[{ name: 'lower', data: 'lower data' }], [{ name: 'up', type: 'link', target: 'lower' }]],
  replacements: [
    [
      { name: 'x', type: 'dir' },
      { name: 'x/child', data: 'c' },
      { name: 'y', data: 'file' },
      { name: 'keep', type: 'dir' },
      { name: 'keep/low', data: 'l' },
    ],
    [
      { name: 'x', data: 'now a file' },
      { name: 'y', type: 'dir' },
      { name: 'y/inside', data: 'i' },
      { name: 'keep', type: 'dir', mode: 0o750 },
      { name: 'p/q/r', data: 'r' },
    ],
  ],
  linkToSymlink: [
    [
      { name: 's', type: 'symlink', target: '/etc/passwd' },
      { name: 't', type: 'link', target: 's' },
    ],
  ],
  emptyWhiteout: [[{ name: 'a', data: 'a' }], [{ name: '.wh.' }]],
  linkToNothing: [[{ name: 'a', type: 'link', target: 'missing' }]],
} satisfies Record<string, Crafted[][]>;

describe('flattening layers made by other tools', () => {
  let store: FsBlobStore;
  const layers = {} as Record<keyof typeof CASES, Array<{ diffId: Digest }>>;
  let n = 0;

  beforeAll(async () => {
    store = await FsBlobStore.create(join(inputs.dir, 'crafted-store'));
    const files: Array<[string, Crafted[]]> = [];
    for (const [name, caseLayers] of Object.entries(CASES)) {
      for (const [i, entries] of caseLayers.entries()) files.push([join(inputs.dir, `${name}-${i}.tar`), entries]);
    }
    const made = await run('python3', ['-c', PYTHON_TAR, JSON.stringify(files)]);
    if (made.code !== 0) throw new Error(made.stderr);
    for (const [name, caseLayers] of Object.entries(CASES) as Array<[keyof typeof CASES, Crafted[][]]>) {
      layers[name] = [];
      for (const i of caseLayers.keys()) {
        const put = await store.put(createReadStream(join(inputs.dir, `${name}-${i}.tar`)));
        layers[name].push({ diffId: put.digest });
      }
    }
  });

  async function flatten(name: keyof typeof CASES): Promise<Map<string, ListedFile>> {
    const out = plannedTar(await flattenLayers(layers[name], store), store);
    const path = join(inputs.dir, `flat-${n++}.tar`);
    await saveOutput(out, path);
    const dir = await extract(path, inputs.dir);
    const listed = await listTree(dir);
    await rm(dir, { recursive: true, force: true });
    return listed;
  }

  const summary = (listed: Map<string, ListedFile>) =>
    Object.fromEntries([...listed].map(([path, e]) => [path, e.type === 'directory' ? 'dir' : e.type === 'file' ? `${e.size}${e.links ? ` ${e.links.join(',')}` : ''}` : e.type]));

  it('turns a link group into a plain file when its first path is whited out', async () => {
    expect(summary(await flatten('linkGroupWhitedOut'))).toEqual({ a: 'dir', b: 'dir', 'b/y': '4' });
  });

  it('applies whiteouts and opaque markers to lower layers only, whatever their place in the tar', async () => {
    const listed = await flatten('whiteoutOrder');
    expect(summary(listed)).toEqual({ foo: '5', d: 'dir', 'd/new': '2' });
    expect(listed.get('d')?.mode).toBe(0o700);
  });

  it('resolves a hard link to a lower layer file, as extracting the layer over the lower ones does', async () => {
    expect(summary(await flatten('crossLayerLink'))).toEqual({ lower: '10 lower,up', up: '10 lower,up' });
  });

  it('replaces directories by files and files by directories; creates missing parents; merges directories', async () => {
    const listed = await flatten('replacements');
    expect(summary(listed)).toEqual({ x: '10', y: 'dir', 'y/inside': '1', keep: 'dir', 'keep/low': '1', p: 'dir', 'p/q': 'dir', 'p/q/r': '1' });
    expect(listed.get('keep')?.mode).toBe(0o750);
    expect(listed.get('p/q')).toMatchObject({ mode: 0o755, uid: 0, gid: 0 });
  });

  it('copies a hard link to a symlink as a symlink', async () => {
    expect(summary(await flatten('linkToSymlink'))).toEqual({ s: 'symlink', t: 'symlink' });
  });

  it('refuses a whiteout with an empty name and a link to nothing', async () => {
    await expect(flatten('emptyWhiteout')).rejects.toBeInstanceOf(LayerInputError);
    await expect(flatten('linkToNothing')).rejects.toThrow(/does not exist/);
  });
});

describe('rootfs under the layer budgets', () => {
  it('counts the entries of all the layers it flattens (BALER_MAX_BUILD_ENTRIES), naming the layer', async () => {
    const budgets = (maxBuildEntries: number) => ({ ...DEFAULT_LAYER_BUDGETS, maxBuildEntries });
    const entries = (await flattenLayers(image.image.layers, image.store)).length;
    const err = await writeRootfs(image.image, { store: image.store, budgets: budgets(entries - 1) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BudgetExceededError);
    expect((err as Error).message).toMatch(/^layer \d+ \(sha256:[0-9a-f]{64}\): more than \d+ entries in the build's layers/);
    await expect(writeRootfs(image.image, { store: image.store, budgets: budgets(10 * entries) })).resolves.toBeDefined();
  });
});
