/**
 * Contents tars compressed by the real tools (GNU tar's own `-J`, `-j`, `--zstd`, `-z`): each
 * builds the very image the plain tar builds, and a corrupt or truncated stream fails the build
 * as the input's fault (LayerInputError: 422), naming the compression. A base archive laid out
 * as `docker save` writes one, its layer and the archive itself compressed by xz, bzip2 or zstd,
 * gives the image the plain archive gives. Bombs, through the service:
 * test/e2e/archive-bomb.test.ts.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuildDeps } from '../../../src/builds/build-deps.ts';
import { runBuild } from '../../../src/builds/run-build.ts';
import { resolveSpec } from '../../../src/builds/spec.ts';
import type { Digest } from '../../../src/digest.ts';
import { detectCompression } from '../../../src/image/compression.ts';
import { LayerInputError } from '../../../src/image/layer-entry.ts';
import { FsBlobStore } from '../../../src/store/fs-blob-store.ts';
import { rejection } from '../../support/rejection.ts';
import { run } from '../../support/run.ts';

let dir: string;
let store: FsBlobStore;
const blobs = new Map<string, Buffer>();

/** GNU tar's options for each compression; '' is the plain tar. */
const COMPRESSIONS = { '': [], xz: ['-J'], bzip2: ['-j'], zstd: ['--zstd'], gzip: ['-z'] } as const;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'baler-contents-compression-'));
  store = await FsBlobStore.create(join(dir, 'store'));
  const root = join(dir, 'root');
  await mkdir(join(root, 'etc/app'), { recursive: true });
  await writeFile(join(root, 'etc/motd'), 'hello from a compressed tar\n');
  // 3 MB that compress well and span several xz/bzip2 blocks' worth of input.
  await writeFile(join(root, 'etc/app/big'), Buffer.alloc(3 * 1024 * 1024, 'baler '));
  await symlink('motd', join(root, 'etc/motd.link'));
  for (const [kind, flags] of Object.entries(COMPRESSIONS)) {
    const out = join(dir, `contents-${kind || 'plain'}.tar`);
    await run('tar', ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', ...flags, '-cf', out, '-C', root, '.'], { timeoutMs: 60_000 });
    blobs.set(kind, await readFile(out));
  }
}, 120_000);

afterAll(async () => rm(dir, { recursive: true, force: true }));

function deps(): BuildDeps {
  return {
    store,
    vm: { run: () => Promise.reject(new Error('no VM in this test')) },
    loadBuildImage: () => Promise.reject(new Error('no base builds in this test')),
    tenant: 'default',
    allowDevices: false,
  };
}

async function put(bytes: Buffer): Promise<Digest> {
  return (await store.put(Readable.from([bytes]))).digest;
}

async function build(bytes: Buffer) {
  return runBuild(resolveSpec({ name: 'compressed', compression: 'none', contents: [{ tar: await put(bytes), to: '/opt' }] }, new Date(0)), deps());
}

describe('a contents tar compressed by GNU tar', () => {
  it.each(['xz', 'bzip2', 'zstd', 'gzip'] as const)(
    'with %s builds the image the plain tar builds, byte for byte',
    async (kind) => {
      const compressed = blobs.get(kind) as Buffer;
      expect(detectCompression(compressed)).toBe(kind);
      const plain = await build(blobs.get('') as Buffer);
      const result = await build(compressed);
      expect(result.imageId).toBe(plain.imageId);
      expect(result.diffIds).toEqual(plain.diffIds);
      expect(result.archive.digest).toBe(plain.archive.digest);
    },
    60_000,
  );
});

describe('a corrupt compressed contents tar', () => {
  it.each(['xz', 'bzip2', 'zstd'] as const)(
    'with %s fails the build as bad input, naming the compression',
    async (kind) => {
      const bytes = Buffer.from(blobs.get(kind) as Buffer);
      // Past the stream header: the magic bytes still say `kind`.
      for (let i = 64; i < bytes.length; i += 97) bytes[i] = (bytes[i] as number) ^ 0x5a;
      const err = await rejection(build(bytes));
      expect(err).toBeInstanceOf(LayerInputError);
      expect(err.message).toMatch(new RegExp(`^contents\\[0\\]: blob sha256:[0-9a-f]{64} is not valid ${kind} data: `));
    },
    60_000,
  );

  it.each(['xz', 'bzip2', 'zstd'] as const)(
    'with %s, cut short, fails likewise (never a silently short tar)',
    async (kind) => {
      const whole = blobs.get(kind) as Buffer;
      const err = await rejection(build(whole.subarray(0, Math.floor(whole.length / 2))));
      expect(err).toBeInstanceOf(LayerInputError);
      expect(err.message).toMatch(new RegExp(`is not valid ${kind} data: `));
    },
    60_000,
  );
});

/** A `docker save` archive (manifest.json, config, `<id>/layer.tar`) of one layer: the plain tar, compressed with `tool` (none: as is). */
async function dockerSaveArchive(tool: string | undefined, name: string): Promise<string> {
  const work = join(dir, name);
  await mkdir(work, { recursive: true });
  const plain = blobs.get('') as Buffer;
  const diffId = `sha256:${createHash('sha256').update(plain).digest('hex')}`;
  await writeFile(join(work, 'plain.tar'), plain);
  if (tool) await run('sh', ['-c', `${tool} -c < '${join(work, 'plain.tar')}' > '${join(work, 'layer')}'`]);
  const layer = await readFile(tool ? join(work, 'layer') : join(work, 'plain.tar'));
  const config = JSON.stringify({ architecture: 'amd64', os: 'linux', created: '2024-01-01T00:00:00Z', config: {}, rootfs: { type: 'layers', diff_ids: [diffId] } });
  await mkdir(join(work, 'archive/l0'), { recursive: true });
  await writeFile(join(work, 'archive/l0/layer.tar'), layer);
  await writeFile(join(work, 'archive/config.json'), config);
  await writeFile(join(work, 'archive/manifest.json'), JSON.stringify([{ Config: 'config.json', RepoTags: [`${name}:latest`], Layers: ['l0/layer.tar'] }]));
  const archive = join(work, 'archive.tar');
  await run('tar', ['--sort=name', '-cf', archive, '-C', join(work, 'archive'), '.']);
  if (!tool) return archive;
  await run('sh', ['-c', `${tool} -c < '${archive}' > '${archive}.compressed'`]);
  return `${archive}.compressed`;
}

describe('a base archive compressed, its layer too', () => {
  it.each([
    ['xz', 'xz'],
    ['bzip2', 'bzip2'],
    ['zstd', 'zstd -q'],
  ])(
    'with %s gives the image the plain archive gives',
    async (kind, tool) => {
      const onBase = async (archive: string) => {
        const blob = await put(await readFile(archive));
        return runBuild(resolveSpec({ name: 'on-base', compression: 'none', fromImage: { blob }, contents: [{ text: 'top\n', to: '/top' }] }, new Date(0)), deps());
      };
      const compressed = await dockerSaveArchive(tool, `base-${kind}`);
      expect(detectCompression(await readFile(compressed))).toBe(kind);
      const plain = await onBase(await dockerSaveArchive(undefined, `base-plain-${kind}`));
      const result = await onBase(compressed);
      expect(result.diffIds).toEqual(plain.diffIds);
      expect(result.archive.digest).toBe(plain.archive.digest);
    },
    60_000,
  );
});
