/**
 * One rule for device nodes (src/image/device-policy.ts), through runBuild, for tars written by
 * GNU tar from a root with real nodes (`mknod`, as debootstrap, mmdebstrap and `docker export`
 * leave them): as contents, and as a layer of a base archive laid out as `docker save` writes
 * one. Nodes under /dev/ are dropped with a line in the build log; one elsewhere fails the
 * build (422) naming its path and BALER_ALLOW_DEVICES, or is kept when the operator sets it.
 * A base pulled from a registry (Debian's docker-registry, the image copied there by skopeo)
 * follows the same rule. The VM step's output: test/image/build-budgets.test.ts, and
 * test/e2e/device-nodes.test.ts
 * with a real VM.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ResultCache } from '../../src/builds/result-cache.ts';
import type { BuildResult } from '../../src/builds/build-result.ts';
import type { BuildDeps } from '../../src/builds/build-deps.ts';
import { runBuild } from '../../src/builds/run-build.ts';
import { resolveSpec, type BuildSpec } from '../../src/builds/spec.ts';
import type { Digest } from '../../src/digest.ts';
import { LayerInputError } from '../../src/image/layer-entry.ts';
import { indexTar } from '../../src/image/tar-index.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';
import { startRegistry } from '../registry/registry-server.ts';
import { rejection } from '../support/rejection.ts';
import { run } from '../support/run.ts';
import { SILENT_OBSERVER } from '../../src/builds/build-observer.ts';

let dir: string;
let store: FsBlobStore;
/** GNU tar of a root with dev/null, dev/console and usr/x (all character devices), and one without usr/x. */
const tars = { withUsrX: '', devOnly: '' };

async function sh(script: string): Promise<void> {
  const result = await run('sh', ['-euc', script], { timeoutMs: 60_000 });
  expect(result.code, result.stderr).toBe(0);
}

async function makeRoot(root: string, usrX: boolean): Promise<void> {
  await mkdir(join(root, 'dev/pts'), { recursive: true });
  await mkdir(join(root, 'usr/bin'), { recursive: true });
  await mkdir(join(root, 'etc'), { recursive: true });
  await writeFile(join(root, 'etc/hostname'), 'devices\n');
  await symlink('/proc/self/fd', join(root, 'dev/fd'));
  await sh(`mknod '${root}/dev/null' c 1 3 && mknod '${root}/dev/console' c 5 1${usrX ? ` && mknod '${root}/usr/x' c 1 3` : ''}`);
}

async function gnuTar(root: string, out: string): Promise<string> {
  await sh(`tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf '${out}' -C '${root}' .`);
  return out;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'baler-devices-'));
  store = await FsBlobStore.create(join(dir, 'store'));
  await makeRoot(join(dir, 'root-x'), true);
  await makeRoot(join(dir, 'root-dev'), false);
  tars.withUsrX = await gnuTar(join(dir, 'root-x'), join(dir, 'with-usr-x.tar'));
  tars.devOnly = await gnuTar(join(dir, 'root-dev'), join(dir, 'dev-only.tar'));
}, 60_000);

afterAll(async () => rm(dir, { recursive: true, force: true }));

async function putFile(path: string): Promise<Digest> {
  return (await store.put(Readable.from([await readFile(path)]))).digest;
}

/** A result cache in memory, shared by the builds that are given it. */
function memoryCache(): ResultCache {
  const entries = new Map<string, string>();
  return {
    get: async <T>(kind: string, key: string) => (entries.has(`${kind}:${key}`) ? (JSON.parse(entries.get(`${kind}:${key}`) as string) as T) : null),
    set: async (kind: string, key: string, value: unknown) => void entries.set(`${kind}:${key}`, JSON.stringify(value)),
  };
}

async function build(spec: Omit<BuildSpec, 'name'>, extra: Partial<BuildDeps> = {}): Promise<{ result: BuildResult; log: string[] }> {
  const log: string[] = [];
  const result = await runBuild(resolveSpec({ name: 'devices', compression: 'none', ...spec }, new Date(0)), {
    store,
    vm: { run: () => Promise.reject(new Error('no VM in this test')) },
    loadBuildImage: () => Promise.reject(new Error('no base builds in this test')),
    tenant: 'default',
    allowDevices: false,
    observer: { ...SILENT_OBSERVER, log: (line) => log.push(line) },
    ...extra,
  });
  return { result, log };
}

/** A layer's entries: name, type, and major/minor for devices. */
async function entriesOf(diffId: Digest): Promise<string[]> {
  const names: string[] = [];
  for await (const e of indexTar(await store.open(diffId))) {
    names.push(e.type.endsWith('device') ? `${e.name} ${e.type} ${e.devmajor}/${e.devminor}` : `${e.name} ${e.type}`);
  }
  return names;
}

const REFUSED = "'usr/x' is a device node outside /dev/; device nodes are dropped under /dev/ and refused elsewhere unless the operator sets BALER_ALLOW_DEVICES=1";
const DROPPED_TWO = 'dropped 2 device nodes under /dev/ (a container runtime mounts its own /dev)';

describe('a contents tar from GNU tar', () => {
  it('with a device outside /dev/ fails (422), naming the path and the setting', async () => {
    const err = await rejection(build({ contents: [{ tar: await putFile(tars.withUsrX) }] }));
    expect(err).toBeInstanceOf(LayerInputError);
    expect(err.message).toBe(`contents[0]: ${REFUSED}`);
  });

  it('has its /dev/ nodes dropped, with a line in the build log; /dev and the rest under it stay', async () => {
    const { result, log } = await build({ contents: [{ tar: await putFile(tars.devOnly) }] });
    expect(await entriesOf(result.diffIds[0] as Digest)).toEqual([
      'dev/ directory',
      'dev/fd symlink',
      'dev/pts/ directory',
      'etc/ directory',
      'etc/hostname file',
      'usr/ directory',
      'usr/bin/ directory',
    ]);
    expect(log).toEqual([`baler: contents[0]: ${DROPPED_TWO}\n`]);
  });

  it('keeps the node outside /dev/ where the operator allows devices, and still drops those under it', async () => {
    const { result, log } = await build({ contents: [{ tar: await putFile(tars.withUsrX) }] }, { allowDevices: true });
    const entries = await entriesOf(result.diffIds[0] as Digest);
    expect(entries).toContain('usr/x character-device 1/3');
    expect(entries.filter((e) => e.startsWith('dev/'))).toEqual(['dev/ directory', 'dev/fd symlink', 'dev/pts/ directory']);
    expect(log).toEqual([`baler: contents[0]: ${DROPPED_TWO}\n`]);
  });

  it('names its own entry in a layered build (one layer per entry)', async () => {
    const spec = { layering: { maxLayers: 10 }, contents: [{ text: 'x\n', to: '/x' }, { tar: await putFile(tars.devOnly) }] };
    const { log } = await build(spec);
    expect(log).toEqual([`baler: contents[1]: ${DROPPED_TWO}\n`]);
    const err = await rejection(build({ ...spec, contents: [...spec.contents, { tar: await putFile(tars.withUsrX) }] }));
    expect(err.message).toBe(`contents[2]: ${REFUSED}`);
  });

  it('unpacked under `to`, is judged by where its entries land: /opt/dev/null is outside /dev/', async () => {
    const err = await rejection(build({ contents: [{ tar: await putFile(tars.devOnly), to: '/opt' }] }));
    expect(err.message).toMatch(/^contents\[0\]: 'opt\/dev\/console' is a device node outside \/dev\//);
  });
});

/**
 * A `docker save` archive (Docker ≤ 24's layout: manifest.json, the config, `<id>/layer.tar`)
 * of two layers: the root given (GNU tar), and a layer with one plain file.
 */
async function dockerSaveArchive(rootTar: string, name: string): Promise<{ archive: string; diffIds: Digest[] }> {
  const work = join(dir, name);
  const top = join(work, 'top-root');
  await mkdir(join(top, 'etc'), { recursive: true });
  await writeFile(join(top, 'etc/motd'), 'top layer\n');
  const layers = [rootTar, await gnuTar(top, join(work, 'top.tar'))];
  const diffIds: Digest[] = [];
  const layerPaths: string[] = [];
  for (const layer of layers) {
    const bytes = await readFile(layer);
    const hex = createHash('sha256').update(bytes).digest('hex');
    diffIds.push(`sha256:${hex}`);
    await mkdir(join(work, 'archive', hex), { recursive: true });
    await writeFile(join(work, 'archive', hex, 'layer.tar'), bytes);
    layerPaths.push(`${hex}/layer.tar`);
  }
  const config = JSON.stringify({
    architecture: 'amd64',
    os: 'linux',
    created: '2024-01-01T00:00:00Z',
    config: { Cmd: ['/bin/sh'] },
    history: [
      { created: '2024-01-01T00:00:00Z', created_by: 'root' },
      { created: '2024-01-01T00:00:00Z', created_by: 'motd' },
    ],
    rootfs: { type: 'layers', diff_ids: diffIds },
  });
  const configHex = createHash('sha256').update(config).digest('hex');
  await writeFile(join(work, 'archive', `${configHex}.json`), config);
  await writeFile(join(work, 'archive', 'manifest.json'), JSON.stringify([{ Config: `${configHex}.json`, RepoTags: [`${name}:latest`], Layers: layerPaths }]));
  const archive = join(work, 'archive.tar');
  await sh(`tar --sort=name -cf '${archive}' -C '${join(work, 'archive')}' .`);
  return { archive, diffIds };
}

describe('a base archive whose layer GNU tar wrote from such a root', () => {
  it('with a device outside /dev/ fails (422), naming the layer, the path and the setting', async () => {
    const { archive, diffIds } = await dockerSaveArchive(tars.withUsrX, 'base-x');
    const err = await rejection(build({ fromImage: { blob: await putFile(archive) }, contents: [{ text: 'hi\n', to: '/etc/hi' }] }));
    expect(err).toBeInstanceOf(LayerInputError);
    expect(err.message).toBe(`base layer 1 of 2 (${diffIds[0]}): ${REFUSED}`);
  });

  it('has that layer written again without its /dev/ nodes (a new diff_id, a line in the log); the other layer stays byte for byte', async () => {
    const { archive, diffIds } = await dockerSaveArchive(tars.devOnly, 'base-dev');
    const blob = await putFile(archive);
    const cache = memoryCache();
    const { result, log } = await build({ fromImage: { blob }, contents: [{ text: 'hi\n', to: '/etc/hi' }] }, { cache });
    const [bottom, top] = result.diffIds as [Digest, Digest, Digest];
    expect(bottom).not.toBe(diffIds[0]);
    expect(top).toBe(diffIds[1]);
    // The same entries in the same order, without the two nodes (and the root entry `./`).
    expect(await entriesOf(bottom)).toEqual(['dev/ directory', 'dev/fd symlink', 'dev/pts/ directory', 'etc/ directory', 'etc/hostname file', 'usr/ directory', 'usr/bin/ directory']);
    expect(log).toEqual([`baler: base layer 1 of 2 (${diffIds[0]}): ${DROPPED_TWO}; the layer is written again without them: ${bottom}\n`]);
    // Its legacy chain is made again from there up; the base's history is kept.
    expect(new Set(result.layers.map((l) => l.v1Id)).size).toBe(3);

    // A second build on the same base takes the rewritten layer from the cache, and says so again.
    const again = await build({ fromImage: { blob }, contents: [{ text: 'hi\n', to: '/etc/hi' }] }, { cache });
    expect(again.result).toEqual(result);
    expect(again.log).toEqual(log);
  });

  it('keeps the node outside /dev/ where the operator allows devices', async () => {
    const { archive } = await dockerSaveArchive(tars.withUsrX, 'base-x-allowed');
    const { result, log } = await build({ fromImage: { blob: await putFile(archive) }, contents: [{ text: 'hi\n', to: '/etc/hi' }] }, { allowDevices: true });
    const entries = await entriesOf(result.diffIds[0] as Digest);
    expect(entries).toContain('usr/x character-device 1/3');
    expect(entries.some((e) => e.startsWith('dev/null') || e.startsWith('dev/console'))).toBe(false);
    expect(log).toHaveLength(1);
  });
});

describe('a base pulled from a registry, its layer written by GNU tar from such a root', () => {
  it('has that layer written again without its /dev/ nodes, with the same log line as an archive', async () => {
    const registry = await startRegistry();
    try {
      const { archive, diffIds } = await dockerSaveArchive(tars.devOnly, 'pulled-dev');
      const ref = `${registry.host}/devices/base:1`;
      const copy = await run('skopeo', ['--insecure-policy', 'copy', '--dest-tls-verify=false', `docker-archive:${archive}`, `docker://${ref}`], { timeoutMs: 60_000 });
      expect(copy.code, copy.stderr).toBe(0);
      const registries = new Map([[registry.host, { insecure: true }]]);
      const { result, log } = await build({ fromImage: { ref }, contents: [{ text: 'hi\n', to: '/etc/hi' }] }, { registries });
      const [bottom, top] = result.diffIds as [Digest, Digest, Digest];
      expect(bottom).not.toBe(diffIds[0]);
      expect(top).toBe(diffIds[1]);
      expect(log).toEqual([`baler: base layer 1 of 2 (${diffIds[0]}): ${DROPPED_TWO}; the layer is written again without them: ${bottom}\n`]);
    } finally {
      await registry.stop();
    }
  }, 120_000);
});
