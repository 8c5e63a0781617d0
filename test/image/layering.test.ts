/** Layered builds (buildLayeredImage): the plan, and real builds through runBuild, read by skopeo. */
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_TENANT } from '../../src/builds/tenant.ts';
import { imageOutput } from '../../src/builds/build-archive.ts';
import type { BuildResult } from '../../src/builds/build-result.ts';
import { runBuild } from '../../src/builds/run-build.ts';
import { resolveSpec, type BuildSpec } from '../../src/builds/spec.ts';
import { planContentLayers } from '../../src/image/layering.ts';
import { loadImage } from '../../src/image/stored-image.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';
import { run } from '../support/run.ts';

describe('planContentLayers', () => {
  it('gives every entry its own layer when there is room', () => {
    expect(planContentLayers([5, 1, 9], 3)).toEqual([[0], [1], [2]]);
  });
  it('keeps the biggest alone and shares one layer among the rest', () => {
    expect(planContentLayers([5, 1, 9, 2, 9], 3)).toEqual([[2], [4], [0, 1, 3]]);
    expect(planContentLayers([5, 1], 1)).toEqual([[0, 1]]);
    expect(planContentLayers([], 3)).toEqual([]);
  });
});

describe('layered builds', () => {
  let dir: string;
  let store: FsBlobStore;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'baler-layered-'));
    store = await FsBlobStore.create(dir);
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  const build = async (spec: Omit<BuildSpec, 'name'>): Promise<BuildResult> =>
    runBuild(resolveSpec({ name: 'layered', compression: 'none', ...spec }, new Date()), {
      store,
      tenant: DEFAULT_TENANT,
      allowDevices: false,
      vm: { run: () => Promise.reject(new Error('no VM in these builds')) },
      loadBuildImage: () => Promise.reject(new Error('no base')),
    });
  const big = async (n: number) => (await store.put(Readable.from([Buffer.alloc(100_000 + n, n)]))).digest;

  it('splits contents into layers, and a change to one file changes only its layer', async () => {
    const [a, b] = [await big(1), await big(2)];
    const contents = (small: string) => [
      { file: a, to: '/big/a' },
      { text: small, to: '/etc/small' },
      { file: b, to: '/big/b' },
      { text: 'other', to: '/etc/other' },
    ];
    const first = await build({ contents: contents('one'), layering: { maxLayers: 3 } });
    expect(first.diffIds).toHaveLength(3);
    const second = await build({ contents: contents('two'), layering: { maxLayers: 3 } });
    // The two big files have layers of their own, unchanged; only the shared layer differs.
    expect(second.diffIds.slice(0, 2)).toEqual(first.diffIds.slice(0, 2));
    expect(second.diffIds[2]).not.toBe(first.diffIds[2]);

    const roomy = await build({ contents: contents('one'), layering: { maxLayers: 10 } });
    expect(roomy.diffIds).toHaveLength(4);
    const changed = await build({ contents: contents('two'), layering: { maxLayers: 10 } });
    expect(changed.diffIds.filter((d, i) => d !== roomy.diffIds[i])).toHaveLength(1);

    const archive = join(dir, 'layered.tar');
    const out = await imageOutput(await loadImage(store, first), { name: 'layered', tag: 'latest', created: '1970-01-01T00:00:01Z' }, 'docker-archive', 'none', store);
    await pipeline(out.stream, createWriteStream(archive));
    const inspect = await run('skopeo', ['inspect', '--config', `docker-archive:${archive}`]);
    expect(inspect.code, inspect.stderr).toBe(0);
    const config = JSON.parse(inspect.stdout) as { rootfs: { diff_ids: string[] }; history: unknown[] };
    expect(config.rootfs.diff_ids).toEqual(first.diffIds);
    expect(config.history).toHaveLength(3);
  });

  it('refuses a maxLayers that leaves no room', async () => {
    await expect(build({ contents: [{ text: 'x', to: '/x' }], layering: { maxLayers: 1 }, runAsRoot: 'true' })).rejects.toThrow(/leaves no room/);
  });
});
