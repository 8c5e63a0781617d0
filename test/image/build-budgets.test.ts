/**
 * A build's budgets through runBuild (issue 12, attacks 4 and 9): the bytes of the layers it
 * writes, the entries of every tree it makes (base layers included), and device nodes a VM
 * step's scripts made. The VM is a stand-in that returns a prepared upper dir.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BudgetExceededError } from '../../src/budget.ts';
import type { BuildResult } from '../../src/builds/build-result.ts';
import type { BuildDeps } from '../../src/builds/build-deps.ts';
import { runBuild } from '../../src/builds/run-build.ts';
import { resolveSpec, type BuildSpec } from '../../src/builds/spec.ts';
import { DEFAULT_LAYER_BUDGETS, type LayerBudgets } from '../../src/image/build-usage.ts';
import { LayerInputError } from '../../src/image/layer-entry.ts';
import { layerTreeFromUpper } from '../../src/image/overlay-form.ts';
import { loadImage } from '../../src/image/stored-image.ts';
import { indexTar } from '../../src/image/tar-index.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';
import type { VmRunner } from '../../src/vm/vm-runner.ts';
import { END_OF_ARCHIVE, entry, globalXattrBomb } from '../support/raw-tar.ts';
import { rejection } from '../support/rejection.ts';
import { SILENT_OBSERVER } from '../../src/builds/build-observer.ts';

let dir: string;
let store: FsBlobStore;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'baler-budgets-'));
  store = await FsBlobStore.create(dir);
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

/** A VM whose step "ran" and left this upper dir (a tar in overlay form). */
const vmLeaving = (upper: Buffer): VmRunner => ({
  run: async () => ({ outcome: { ok: true }, openUpperTar: async () => Readable.from([upper]), dispose: async () => {} }),
});
const noVm: VmRunner = { run: () => Promise.reject(new Error('no VM in this build')) };

function build(spec: Omit<BuildSpec, 'name'>, deps: Omit<Partial<BuildDeps>, 'layerBudgets'> & { budgets?: Partial<LayerBudgets> } = {}): Promise<BuildResult> {
  const { budgets, ...rest } = deps;
  return runBuild(resolveSpec({ name: 'budgets', compression: 'none', ...spec }, new Date(0)), {
    store,
    tenant: 'budgets',
    allowDevices: false,
    vm: noVm,
    loadBuildImage: () => Promise.reject(new Error('no base')),
    ...rest,
    layerBudgets: { ...DEFAULT_LAYER_BUDGETS, ...budgets },
  });
}

/** What `mknod` and `rm` in runAsRoot leave in the upper dir: devices, and a deletion (0/0). */
const upperWithDevices = Buffer.concat([
  entry({ name: './', type: '5' }),
  entry({ name: './dev/', type: '5' }),
  entry({ name: './dev/mem2', type: '3', devmajor: 1, devminor: 1 }),
  entry({ name: './dev/sda9', type: '4', devmajor: 8, devminor: 9 }),
  entry({ name: './etc/', type: '5' }),
  entry({ name: './etc/gone', type: '3', devmajor: 0, devminor: 0 }),
  entry({ name: './etc/also-gone', type: '1', linkname: './etc/gone' }),
  END_OF_ARCHIVE,
]);

/** The same with the devices outside /dev/ (and one left under it). */
const upperWithDeviceOutsideDev = Buffer.concat([
  entry({ name: './', type: '5' }),
  entry({ name: './dev/', type: '5' }),
  entry({ name: './dev/mem2', type: '3', devmajor: 1, devminor: 1 }),
  entry({ name: './usr/', type: '5' }),
  entry({ name: './usr/mem2', type: '3', devmajor: 1, devminor: 1 }),
  entry({ name: './usr/sda9', type: '4', devmajor: 8, devminor: 9 }),
  END_OF_ARCHIVE,
]);

describe('a contents tar with a global PAX header (attack 1)', () => {
  it('fails the build at the header, naming the budget and the contents entry', async () => {
    const blob = (await store.put(Readable.from([globalXattrBomb()]))).digest;
    const err = await rejection(build({ contents: [{ text: 'x', to: '/x' }, { tar: blob }] }));
    expect(err).toBeInstanceOf(BudgetExceededError);
    expect(err.message).toBe('contents[1]: more than 1000 global PAX records in one tar (at byte 0) (the budget BALER_MAX_GLOBAL_PAX_RECORDS is 1000)');
  });
});

describe('device nodes made by a VM step (attack 9)', () => {
  it('are dropped under /dev/, with a line in the log; whiteouts are not devices', async () => {
    const log: string[] = [];
    const result = await build({ runAsRoot: 'mknod /dev/mem2 c 1 1' }, { vm: vmLeaving(upperWithDevices), observer: { ...SILENT_OBSERVER, log: (line) => log.push(line) } });
    const names: string[] = [];
    for await (const e of indexTar(await store.open(result.diffIds.at(-1) as never))) names.push(`${e.name} ${e.type}`);
    expect(names).toEqual(['dev/ directory', 'etc/ directory', 'etc/.wh.also-gone file', 'etc/.wh.gone file']);
    expect(log).toEqual(['baler: the VM step output: dropped 2 device nodes under /dev/ (a container runtime mounts its own /dev)\n']);
  });

  it('are refused elsewhere, naming the path and the setting', async () => {
    const err = await rejection(build({ runAsRoot: 'mknod /usr/mem2 c 1 1' }, { vm: vmLeaving(upperWithDeviceOutsideDev) }));
    expect(err).toBeInstanceOf(LayerInputError);
    expect(err.message).toBe(
      "the VM step output: 'usr/mem2' is a device node outside /dev/; device nodes are dropped under /dev/ and refused elsewhere unless the operator sets BALER_ALLOW_DEVICES=1",
    );
  });

  it('are kept outside /dev/ where the operator allows devices (BALER_ALLOW_DEVICES=1)', async () => {
    const result = await build({ runAsRoot: 'mknod /usr/mem2 c 1 1' }, { vm: vmLeaving(upperWithDeviceOutsideDev), allowDevices: true });
    const names: string[] = [];
    for await (const e of indexTar(await store.open(result.diffIds.at(-1) as never))) names.push(`${e.name} ${e.type} ${e.devmajor}/${e.devminor}`);
    expect(names).toEqual(['dev/ directory 0/0', 'usr/ directory 0/0', 'usr/mem2 character-device 1/1', 'usr/sda9 block-device 8/9']);
  });

  it('shows a path escaped and cut short', async () => {
    const name = `./usr/\x1b]0;owned\x07${'n'.repeat(200)}`;
    const upper = await store.put(Readable.from([Buffer.concat([entry({ name: '', type: '3', devmajor: 1, devminor: 3 }, undefined, [['path', name]]), END_OF_ARCHIVE])]));
    const err = await rejection(layerTreeFromUpper(upper.digest, store, { mode: 0o755, uid: 0, gid: 0 }));
    expect(err.message).toContain("'usr/\\x1b]0;owned\\x07nnn");
    expect(err.message).not.toMatch(/[\x00-\x1f]/);
  });
});

describe('layer bytes per build (attack 4)', () => {
  it('one 1 MiB blob named 300 times fails before any layer byte is written', async () => {
    const blob = (await store.put(Readable.from([Buffer.alloc(1024 ** 2, 7)]))).digest;
    const contents = Array.from({ length: 300 }, (_, i) => ({ file: blob, to: `/copy/${i}` }));
    let puts = 0;
    const counting = Object.create(store) as FsBlobStore;
    counting.put = (...args: Parameters<FsBlobStore['put']>) => {
      puts++;
      return store.put(...args);
    };
    const err = await rejection(build({ contents }, { store: counting, budgets: { maxBuildLayerBytes: 100 * 1024 ** 2 } }));
    expect(err).toBeInstanceOf(BudgetExceededError);
    expect(err).toMatchObject({ setting: 'BALER_MAX_BUILD_LAYER_BYTES', limit: 100 * 1024 ** 2 });
    expect(err.message).toMatch(/^baler: contents: the build's layers would hold more than 104857600 bytes \(314572800 so far\)/);
    expect(puts).toBe(0);
    // Within the budget the same contents build.
    await expect(build({ contents: contents.slice(0, 90) }, { budgets: { maxBuildLayerBytes: 100 * 1024 ** 2 } })).resolves.toBeDefined();
  });
});

describe('entries per build', () => {
  it('counts the base layers a VM step reads, and fails naming the base layer', async () => {
    const files = Array.from({ length: 120 }, (_, i) => ({ text: String(i), to: `/f/${i}` }));
    const base = await build({ contents: files });
    const deps = {
      vm: vmLeaving(Buffer.concat([entry({ name: './', type: '5' }), END_OF_ARCHIVE])),
      loadBuildImage: async () => loadImage(store, base),
    };
    const spec = { fromImage: { build: 'base' }, runAsRoot: 'true' };
    const err = await rejection(build(spec, { ...deps, budgets: { maxBuildEntries: 100 } }));
    expect(err).toBeInstanceOf(BudgetExceededError);
    expect(err.message).toMatch(/^base layer 0 \(sha256:[0-9a-f]{64}\): more than 100 entries in the build's layers \(base layers included\)/);
    await expect(build(spec, { ...deps, budgets: { maxBuildEntries: 200 } })).resolves.toBeDefined();
  });

  it('counts every contents entry, directories it implies included, across layered trees', async () => {
    const contents = [
      { text: 'a', to: `/${'d/'.repeat(60)}a` },
      { text: 'b', to: `/${'e/'.repeat(60)}b` },
    ];
    const err = await rejection(build({ contents, layering: { maxLayers: 5 } }, { budgets: { maxBuildEntries: 100 } }));
    expect(err).toMatchObject({ setting: 'BALER_MAX_BUILD_ENTRIES' });
    expect(err.message).toMatch(/^contents\[\d+\]: more than 100 entries/);
    const perLayer = await rejection(build({ contents }, { budgets: { maxLayerEntries: 50 } }));
    expect(perLayer.message).toMatch(/^contents\[0\]: more than 50 entries in one layer \(directories it implies included\) \(the budget BALER_MAX_LAYER_ENTRIES is 50\)$/);
  });
});
