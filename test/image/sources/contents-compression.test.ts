/**
 * Contents tars compressed by the real tools (GNU tar's own `-J`, `-j`, `--zstd`, `-z`): each
 * builds the very image the plain tar builds, and a corrupt or truncated stream fails the build
 * as the input's fault (LayerInputError: 422), naming the compression. Bombs, through the
 * service: test/e2e/archive-bomb.test.ts.
 */
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBuild, type BuildDeps } from '../../../src/builds/run-build.ts';
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
  it.each(['xz', 'bzip2', 'zstd', 'gzip'] as const)('with %s builds the image the plain tar builds, byte for byte', async (kind) => {
    const compressed = blobs.get(kind) as Buffer;
    expect(detectCompression(compressed)).toBe(kind);
    const plain = await build(blobs.get('') as Buffer);
    const result = await build(compressed);
    expect(result.imageId).toBe(plain.imageId);
    expect(result.diffIds).toEqual(plain.diffIds);
    expect(result.archive.digest).toBe(plain.archive.digest);
  }, 60_000);
});

describe('a corrupt compressed contents tar', () => {
  it.each(['xz', 'bzip2', 'zstd'] as const)('with %s fails the build as bad input, naming the compression', async (kind) => {
    const bytes = Buffer.from(blobs.get(kind) as Buffer);
    // Past the stream header: the magic bytes still say `kind`.
    for (let i = 64; i < bytes.length; i += 97) bytes[i] = (bytes[i] as number) ^ 0x5a;
    const err = await rejection(build(bytes));
    expect(err).toBeInstanceOf(LayerInputError);
    expect(err.message).toMatch(new RegExp(`^contents\\[0\\]: blob sha256:[0-9a-f]{64} is not valid ${kind} data: `));
  }, 60_000);

  it.each(['xz', 'bzip2', 'zstd'] as const)('with %s, cut short, fails likewise (never a silently short tar)', async (kind) => {
    const whole = blobs.get(kind) as Buffer;
    const err = await rejection(build(whole.subarray(0, Math.floor(whole.length / 2))));
    expect(err).toBeInstanceOf(LayerInputError);
    expect(err.message).toMatch(new RegExp(`is not valid ${kind} data: `));
  }, 60_000);
});
