import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { text } from 'node:stream/consumers';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { DEFAULT_TENANT } from '../../src/builds/tenant.ts';
import { assembleImage, mergeRunConfig, type BaseImage } from '../../src/image/image.ts';
import type { Layer } from '../../src/image/layer.ts';
import type { Digest } from '../../src/digest.ts';
import { runBuild } from '../../src/builds/run-build.ts';
import { resolveSpec } from '../../src/builds/spec.ts';
import { writeDockerArchive } from '../../src/image/sinks/docker-archive.ts';
import { loadStoredImage } from '../../src/image/sources/earlier-build.ts';
import { loadImage } from '../../src/image/stored-image.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';
import { run } from '../support/run.ts';

const layer = (n: number): Layer => ({
  diffId: `sha256:${String(n).repeat(64).slice(0, 64)}` as Digest,
  digest: `sha256:${String(n).repeat(64).slice(0, 64)}` as Digest,
  size: n,
  mediaType: 'application/vnd.docker.image.rootfs.diff.tar',
  open: () => Promise.reject(new Error('not read')),
});

describe('mergeRunConfig: the base config is inherited whole, the spec merged on top', () => {
  it('merges Env by variable name, base order kept, spec values winning', () => {
    expect(mergeRunConfig({ Env: ['PATH=/bin', 'A=1'] }, { Env: ['A=2', 'B=3'] }).Env).toEqual(['PATH=/bin', 'A=2', 'B=3']);
  });
  it('merges Labels, ExposedPorts and Volumes by key', () => {
    const merged = mergeRunConfig(
      { Labels: { a: '1', b: '1' }, ExposedPorts: { '80/tcp': {} }, Volumes: { '/data': {} } },
      { Labels: { b: '2' }, ExposedPorts: { '443/tcp': {} }, Volumes: { '/cache': {} } },
    );
    expect(merged).toEqual({ Labels: { a: '1', b: '2' }, ExposedPorts: { '80/tcp': {}, '443/tcp': {} }, Volumes: { '/data': {}, '/cache': {} } });
  });
  it('replaces scalars and Cmd, and keeps what the spec does not set', () => {
    expect(mergeRunConfig({ User: 'root', WorkingDir: '/', Cmd: ['a'], StopSignal: 'SIGTERM' }, { User: 'app', Cmd: ['b'] })).toEqual({
      User: 'app',
      WorkingDir: '/',
      Cmd: ['b'],
      StopSignal: 'SIGTERM',
    });
  });
  it('clears an inherited Cmd when the spec sets Entrypoint alone, as Docker does', () => {
    expect(mergeRunConfig({ Cmd: ['sh'], Entrypoint: ['old'] }, { Entrypoint: ['new'] })).toEqual({ Entrypoint: ['new'] });
    expect(mergeRunConfig({ Cmd: ['sh'] }, { Entrypoint: ['new'], Cmd: ['x'] })).toEqual({ Entrypoint: ['new'], Cmd: ['x'] });
  });
  it('keeps fields of the base it does not know', () => {
    const base = { Healthcheck: { Test: ['CMD', 'true'] }, Cmd: ['a'] } as unknown as Parameters<typeof mergeRunConfig>[0];
    expect(mergeRunConfig(base, {})).toEqual({ Healthcheck: { Test: ['CMD', 'true'] }, Cmd: ['a'] });
    expect(mergeRunConfig(undefined, undefined)).toEqual({});
  });
});

describe('assembleImage', () => {
  const input = { architecture: 'amd64', os: 'linux', created: '1970-01-01T00:00:01Z', history: [{ created: '1970-01-01T00:00:01Z', created_by: 'x' }] };

  it('chains new legacy layers onto the base top layer and keeps base layers, history and diff ids', () => {
    const first = assembleImage({ ...input, config: { Env: ['A=1'] } }, undefined, [{ layer: layer(1), tarsum: 't1' }]);
    const base: BaseImage = { config: JSON.parse(first.config), layers: first.layers, legacyLayers: first.legacyLayers, stored: [] };
    const second = assembleImage({ ...input, config: { Cmd: ['run'] } }, base, [{ layer: layer(2), tarsum: 't2' }]);
    const config = JSON.parse(second.config);
    expect(config.rootfs.diff_ids).toEqual([layer(1).diffId, layer(2).diffId]);
    expect(config.history).toHaveLength(2);
    expect(config.config).toEqual({ Cmd: ['run'], Env: ['A=1'] }); // base config inherited, spec on top
    expect(second.legacyLayers[0]).toEqual(first.legacyLayers[0]);
    const top = JSON.parse(second.legacyLayers[1]?.json ?? '{}');
    expect(top).toMatchObject({ parent: first.legacyLayers[0]?.id, checksum: 't2', Size: 2, id: second.legacyLayers[1]?.id });
    expect(JSON.parse(first.legacyLayers[0]?.json ?? '{}').parent).toBeUndefined();
  });

  it('serialises the config canonically, so equal inputs give equal image ids', () => {
    const a = assembleImage({ ...input, config: { Labels: { b: '1', a: '2' } } }, undefined, [{ layer: layer(1), tarsum: 't' }]);
    const b = assembleImage({ ...input, config: { Labels: { a: '2', b: '1' } } }, undefined, [{ layer: layer(1), tarsum: 't' }]);
    expect(a.configDigest).toBe(b.configDigest);
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
      loadBuildImage: async () => loadStoredImage(store, first.imageId, first.layers),
    };
    const first = await runBuild(resolveSpec({ name: 'a', contents: [{ text: '1', to: '/a' }], config: { Env: ['X=1'] } }, new Date()), deps);
    const second = await runBuild(resolveSpec({ name: 'b', fromImage: { build: 'x' }, contents: [{ text: '2', to: '/b' }] }, new Date()), deps);
    expect(second.layers[0]).toEqual(first.layers[0]);
    const secondImage = await loadStoredImage(store, second.imageId, second.layers);
    expect(JSON.parse(secondImage.legacyLayers[1]?.json ?? '{}').parent).toBe(first.layers[0]?.v1Id);
    // What the archive holds for the top layer is the stored json.
    const image = await loadImage(store, second.imageId, second.layers);
    const archive = join(dir, 'b.tar');
    await pipeline(writeDockerArchive(image, { name: 'b', tag: 'latest' }, 1, store), createWriteStream(archive));
    const inArchive = (await run('tar', ['-xOf', archive, `${second.layers[1]?.v1Id}/json`])).stdout;
    expect(inArchive).toBe(await text(await store.open(second.layers[1]!.v1Json)));
    await rm(dir, { recursive: true, force: true });
  });
});
