import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { text } from 'node:stream/consumers';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { DEFAULT_TENANT } from '../../src/builds/tenant.ts';
import { assembleImage } from '../../src/image/image.ts';
import type { Digest } from '../../src/digest.ts';
import { runBuild } from '../../src/builds/run-build.ts';
import { resolveSpec } from '../../src/builds/spec.ts';
import { writeDockerArchive } from '../../src/image/sinks/docker-archive.ts';
import { loadImage } from '../../src/image/stored-image.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';
import { run } from '../support/run.ts';

const layer = (n: number, tarsum: string) => ({ diffId: `sha256:${String(n).repeat(64).slice(0, 64)}` as Digest, size: n, tarsum });

describe('assembleImage', () => {
  const input = { architecture: 'amd64', os: 'linux', created: '1970-01-01T00:00:01Z', history: [{ created: '1970-01-01T00:00:01Z', created_by: 'x' }] };

  it('chains new legacy layers onto the base top layer and keeps base layers, history and diff ids', () => {
    const first = assembleImage({ ...input, config: { Env: ['A=1'] } }, undefined, [layer(1, 't1')]);
    const second = assembleImage({ ...input, config: { Cmd: ['run'] } }, first, [layer(2, 't2')]);
    const config = JSON.parse(second.config);
    expect(config.rootfs.diff_ids).toEqual([layer(1, 't1').diffId, layer(2, 't2').diffId]);
    expect(config.history).toHaveLength(2);
    expect(config.config).toEqual({ Cmd: ['run'], Env: ['A=1'] }); // base config inherited, spec on top
    expect(second.layers[0]).toEqual(first.layers[0]);
    expect(second.legacyJson[0]).toBe(first.legacyJson[0]);
    const top = JSON.parse(second.legacyJson[1] ?? '{}');
    expect(top).toMatchObject({ parent: first.layers[0]?.v1Id, checksum: 't2', Size: 2, id: second.layers[1]?.v1Id });
    expect(JSON.parse(first.legacyJson[0] ?? '{}').parent).toBeUndefined();
  });

  it('serialises the config canonically, so equal inputs give equal image ids', () => {
    const a = assembleImage({ ...input, config: { Labels: { b: '1', a: '2' } } }, undefined, [layer(1, 't')]);
    const b = assembleImage({ ...input, config: { Labels: { a: '2', b: '1' } } }, undefined, [layer(1, 't')]);
    expect(a.imageId).toBe(b.imageId);
    expect(a.config).not.toMatch(/\s/);
  });
});

describe('a build result', () => {
  it('keeps legacy jsons equal to the ones in its archive, so a later build reuses them as they are', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'baler-result-'));
    const store = await FsBlobStore.create(dir);
    const deps = {
      store,
      tenant: DEFAULT_TENANT,
      allowDevices: false,
      vm: { run: () => Promise.reject(new Error('no VM')) },
      loadBuildImage: async () => loadImage(store, first),
    };
    const first = await runBuild(resolveSpec({ name: 'a', contents: [{ text: '1', to: '/a' }], config: { Env: ['X=1'] } }, new Date()), deps);
    const second = await runBuild(resolveSpec({ name: 'b', fromImage: { build: 'x' }, contents: [{ text: '2', to: '/b' }] }, new Date()), deps);
    expect(second.layers[0]).toEqual(first.layers[0]);
    const secondImage = await loadImage(store, second);
    expect(JSON.parse(secondImage.legacyJson[1] ?? '{}').parent).toBe(first.layers[0]?.v1Id);
    // What the archive holds for the top layer is the stored json.
    const image = await loadImage(store, second);
    const archive = join(dir, 'b.tar');
    await pipeline(writeDockerArchive(image, { name: 'b', tag: 'latest' }, 1, store), createWriteStream(archive));
    const inArchive = (await run('tar', ['-xOf', archive, `${second.layers[1]?.v1Id}/json`])).stdout;
    expect(inArchive).toBe(await text(await store.open(second.layers[1]!.v1Json)));
    await rm(dir, { recursive: true, force: true });
  });
});
