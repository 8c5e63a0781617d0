/**
 * Issue 16: the OS packages of an image, read by streaming over its stored layers
 * (src/attest/sbom/image-packages.ts). A real Debian root (mmdebstrap minbase bookworm, cached
 * by scripts/debian-root.mjs) stored as a layer gives exactly the packages `dpkg-query` lists on
 * the same tar unpacked by GNU tar; layers over it that rewrite the status file, whiteout a
 * distroless `status.d/` entry or make its directory opaque change the set as an unpacked image
 * would. An apk database written here gives its packages. Budgets fail fast, naming the setting.
 * The Debian root's SBOM documents validate (CycloneDX's own validator) and list every package.
 * No VM.
 */
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDebianRoot } from '../../scripts/debian-root.mjs';
import { Spec, Validation } from '@cyclonedx/cyclonedx-library';
import type { PackageRecord } from '../../src/attest/attestation-types.ts';
import { cycloneDxDocument } from '../../src/attest/sbom/cyclonedx.ts';
import { imagePackages } from '../../src/attest/sbom/image-packages.ts';
import { MemoryLayerDatabasesCache } from '../../src/attest/sbom/layer-databases-cache.ts';
import { spdxDocument } from '../../src/attest/sbom/spdx.ts';
import { BudgetExceededError } from '../../src/budget.ts';
import type { Digest } from '../../src/digest.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';
import { rejection } from '../support/rejection.ts';
import { run } from '../support/run.ts';

let work: string;
let store: FsBlobStore;
let rootTar: string;
/** The Debian root's layer (its diff_id: the tar is stored as it is). */
let root: Digest;
let layerCount = 0;

/** `name version arch` lines, sorted, as dpkg-query prints them. */
function lines(packages: PackageRecord[]): string[] {
  return packages.map((p) => `${p.name} ${p.version} ${p.architecture}`).sort();
}

async function sh(script: string): Promise<string> {
  const result = await run('sh', ['-euc', script], { timeoutMs: 120_000 });
  expect(result.code, result.stderr).toBe(0);
  return result.stdout;
}

/** A layer tar made by GNU tar from `files` (path → content; `null` is an empty file, e.g. a whiteout), stored. */
async function layer(files: Record<string, string | null>): Promise<Digest> {
  const dir = join(work, `layer-${++layerCount}`);
  await mkdir(dir);
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), content ?? '');
  }
  const tar = `${dir}.tar`;
  await sh(`tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf '${tar}' -C '${dir}' .`);
  return (await store.put(createReadStream(tar))).digest;
}

beforeAll(async () => {
  rootTar = (await ensureDebianRoot()).tar;
  work = await mkdtemp(join(tmpdir(), 'baler-image-packages-'));
  store = await FsBlobStore.create(join(work, 'store'));
  root = (await store.put(createReadStream(rootTar))).digest;
}, 600_000);

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe('a Debian root', () => {
  let expected: string[];
  let packages: PackageRecord[];

  beforeAll(async () => {
    const unpacked = join(work, 'unpacked');
    await mkdir(unpacked);
    await sh(`tar -xf '${rootTar}' -C '${unpacked}' --exclude='./dev/*'`);
    const listed = await sh(`dpkg-query --admindir='${unpacked}/var/lib/dpkg' -W -f '\${Package} \${Version} \${Architecture}\\n'`);
    expected = listed.split('\n').filter(Boolean).sort();
    const rssBefore = process.memoryUsage().rss;
    const t = performance.now();
    packages = await imagePackages([root], store, { cache: new MemoryLayerDatabasesCache() });
    const ms = performance.now() - t;
    console.log(
      `imagePackages on the Debian root: ${packages.length} packages in ${ms.toFixed(0)} ms; rss ${(rssBefore / 2 ** 20).toFixed(0)} -> ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB`,
    );
  }, 300_000);

  it('lists exactly the packages dpkg-query lists on the unpacked root', () => {
    expect(expected.length).toBeGreaterThan(80);
    expect(lines(packages)).toEqual(expected);
  });

  it('gives each package its source, purl and layer', () => {
    const libc = packages.find((p) => p.name === 'libc6');
    expect(libc).toMatchObject({ type: 'deb', sourceName: 'glibc', layer: root });
    // bookworm's os-release (/etc/os-release, a symlink to /usr/lib/os-release) names the distribution.
    expect(libc?.purl).toBe(`pkg:deb/debian/libc6@${libc?.version}?arch=${libc?.architecture}&distro=debian-12`);
    const apt = packages.find((p) => p.name === 'apt');
    // apt's source is apt (no Source field): none recorded.
    expect(apt?.sourceName).toBeUndefined();
    expect(packages.every((p) => p.layer === root)).toBe(true);
  });

  it("gives SBOM documents CycloneDX's validator accepts, one package per dpkg package", async () => {
    const input = { name: 'debian:minbase', imageId: root, platform: 'linux/amd64', created: '1970-01-01T00:00:00Z', packages, contents: [], toolVersion: '0.1.0' };
    const cdx = cycloneDxDocument(input);
    expect(await new Validation.JsonStrictValidator(Spec.Version.v1dot6).validate(cdx)).toBeNull();
    expect((JSON.parse(cdx) as { components: unknown[] }).components.length).toBe(expected.length);
    expect((spdxDocument(input) as { packages: unknown[] }).packages.length).toBe(expected.length + 1);
  });

  it('loses a package a later layer removes from the status file, and places one it adds in that layer', async () => {
    const status = await readFile(join(work, 'unpacked/var/lib/dpkg/status'), 'latin1');
    const paragraphs = status.split('\n\n').filter((p) => p.trim());
    const removed = paragraphs.filter((p) => !p.startsWith('Package: gzip\n'));
    expect(removed.length).toBe(paragraphs.length - 1);
    const rewrite = await layer({ 'var/lib/dpkg/status': `${removed.join('\n\n')}\n` });
    const after = await imagePackages([root, rewrite], store);
    expect(lines(after)).toEqual(expected.filter((l) => !l.startsWith('gzip ')));
    expect(after.every((p) => p.layer === root)).toBe(true);

    const added = await layer({
      'var/lib/dpkg/status': `${removed.join('\n\n')}\n\nPackage: baler-hello\nStatus: install ok installed\nVersion: 1.0\nArchitecture: all\nDescription: says hello\n and more\n`,
    });
    const withHello = await imagePackages([root, rewrite, added], store);
    expect(withHello.find((p) => p.name === 'baler-hello')).toMatchObject({ version: '1.0', architecture: 'all', layer: added });
    expect(withHello.filter((p) => p.layer === root).length).toBe(expected.length - 1);
    // The original status back in a later layer: gzip is listed again, from that layer.
    const restored = await layer({ 'var/lib/dpkg/status': status });
    const again = await imagePackages([root, rewrite, added, restored], store);
    expect(lines(again)).toEqual(expected);
    expect(again.find((p) => p.name === 'gzip')?.layer).toBe(restored);
    expect(again.find((p) => p.name === 'libc6')?.layer).toBe(root);
  });

  it('loses every package when a layer deletes the status file or makes /var/lib/dpkg opaque', async () => {
    const whiteout = await layer({ 'var/lib/dpkg/.wh.status': null });
    expect(await imagePackages([root, whiteout], store)).toEqual([]);
    const opaque = await layer({ 'var/lib/.wh..wh..opq': null, 'var/lib/misc/x': 'x' });
    expect(await imagePackages([root, opaque], store)).toEqual([]);
  });
});

describe('distroless status.d', () => {
  const control = (name: string, version: string, extra = '') => `Package: ${name}\nVersion: ${version}\nArchitecture: amd64\n${extra}Description: ${name}\n`;

  it('lists one package per file, skips md5sums, and follows whiteouts and opaque directories', async () => {
    const base = await layer({
      'var/lib/dpkg/status.d/base-files': control('base-files', '12.4+deb12u5'),
      'var/lib/dpkg/status.d/base-files.md5sums': 'd41d8cd98f00b204e9800998ecf8427e  etc/debian_version\n',
      'var/lib/dpkg/status.d/libssl3': control('libssl3', '3.0.15-1~deb12u1', 'Source: openssl\n'),
      'var/lib/dpkg/status.d/tzdata': control('tzdata', '2024a-0+deb12u1'),
    });
    const first = await imagePackages([base], store);
    expect(lines(first)).toEqual(['base-files 12.4+deb12u5 amd64', 'libssl3 3.0.15-1~deb12u1 amd64', 'tzdata 2024a-0+deb12u1 amd64']);
    expect(first.find((p) => p.name === 'libssl3')).toMatchObject({ sourceName: 'openssl', sourceVersion: '3.0.15-1~deb12u1' });

    const deleted = await layer({ 'var/lib/dpkg/status.d/.wh.tzdata': null });
    expect(lines(await imagePackages([base, deleted], store))).toEqual(['base-files 12.4+deb12u5 amd64', 'libssl3 3.0.15-1~deb12u1 amd64']);

    const opaque = await layer({ 'var/lib/dpkg/status.d/.wh..wh..opq': null, 'var/lib/dpkg/status.d/libc6': control('libc6', '2.36-9+deb12u9', 'Source: glibc (2.36-9+deb12u9)\n') });
    const replaced = await imagePackages([base, deleted, opaque], store);
    expect(replaced).toEqual([
      {
        type: 'deb',
        name: 'libc6',
        version: '2.36-9+deb12u9',
        architecture: 'amd64',
        sourceName: 'glibc',
        sourceVersion: '2.36-9+deb12u9',
        purl: 'pkg:deb/debian/libc6@2.36-9+deb12u9?arch=amd64',
        layer: opaque,
      },
    ]);
  });
});

describe('an apk database', () => {
  const INSTALLED = [
    'C:Q1abc=\nP:musl\nV:1.2.5-r0\nA:x86_64\nS:407000\nI:647000\nT:the musl c library (libc) implementation\nU:https://musl.libc.org/\nL:MIT\no:musl\nm:Natanael Copa <ncopa@alpinelinux.org>\nt:1712000000\nc:abc\nF:lib\nR:ld-musl-x86_64.so.1\na:0:0:755\nZ:Q1xyz=\n',
    'P:busybox\nV:1.36.1-r28\nA:x86_64\nL:GPL-2.0-only\no:busybox\nD:so:libc.musl-x86_64.so.1\nF:bin\nR:busybox\n',
    'P:ssl_client\nV:1.36.1-r28\nA:x86_64\nL:GPL-2.0-only\no:busybox\n',
    'P:ca-certificates-bundle\nV:20240226-r0\nA:x86_64\nL:MPL-2.0 AND MIT\no:ca-certificates\n',
  ].join('\n');

  it('gives name, version, architecture, licence, origin and purl', async () => {
    const alpine = await layer({ 'lib/apk/db/installed': INSTALLED, 'etc/alpine-release': '3.20.0\n' });
    const packages = await imagePackages([alpine], store);
    expect(lines(packages)).toEqual(['busybox 1.36.1-r28 x86_64', 'ca-certificates-bundle 20240226-r0 x86_64', 'musl 1.2.5-r0 x86_64', 'ssl_client 1.36.1-r28 x86_64']);
    expect(packages.find((p) => p.name === 'ssl_client')).toEqual({
      type: 'apk',
      name: 'ssl_client',
      version: '1.36.1-r28',
      architecture: 'x86_64',
      license: 'GPL-2.0-only',
      sourceName: 'busybox',
      purl: 'pkg:apk/alpine/ssl_client@1.36.1-r28?arch=x86_64',
      layer: alpine,
    });
    // `apk del busybox ssl_client` rewrites the database.
    const removed = await layer({
      'lib/apk/db/installed': INSTALLED.split('\n\n')
        .filter((b) => !b.includes('o:busybox'))
        .join('\n\n'),
    });
    expect(lines(await imagePackages([alpine, removed], store))).toEqual(['ca-certificates-bundle 20240226-r0 x86_64', 'musl 1.2.5-r0 x86_64']);
    // An os-release names the distribution in every purl, whichever layer wrote it.
    const release = await layer({ 'etc/os-release': 'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.20.0\n' });
    expect((await imagePackages([alpine, removed, release], store)).map((p) => p.purl)).toEqual([
      'pkg:apk/alpine/ca-certificates-bundle@20240226-r0?arch=x86_64&distro=alpine-3.20.0',
      'pkg:apk/alpine/musl@1.2.5-r0?arch=x86_64&distro=alpine-3.20.0',
    ]);
  });
});

describe('database files that are links', () => {
  it('reads a hard-linked database from its target, and loses one a symlink replaces', async () => {
    const dir = join(work, 'links');
    await mkdir(join(dir, 'lib/apk/db'), { recursive: true });
    await writeFile(join(dir, 'lib/apk/db/a-copy'), 'P:musl\nV:1.2.5-r0\nA:x86_64\n');
    // GNU tar stores the later name (in --sort=name order) as a hard link to the earlier one.
    await sh(
      `ln '${dir}/lib/apk/db/a-copy' '${dir}/lib/apk/db/installed' && tar --sort=name --owner=0 --group=0 -cf '${dir}.tar' -C '${dir}' . && tar -tvf '${dir}.tar' | grep -q 'installed link to'`,
    );
    const linked = (await store.put(createReadStream(`${dir}.tar`))).digest;
    expect(lines(await imagePackages([linked], store))).toEqual(['musl 1.2.5-r0 x86_64']);

    const sym = join(work, 'symlink');
    await mkdir(join(sym, 'lib/apk/db'), { recursive: true });
    await sh(`ln -s /dev/null '${sym}/lib/apk/db/installed' && tar --sort=name -cf '${sym}.tar' -C '${sym}' .`);
    const replaced = (await store.put(createReadStream(`${sym}.tar`))).digest;
    expect(await imagePackages([linked, replaced], store)).toEqual([]);
  });
});

describe('the per-layer cache', () => {
  it("keeps each layer's part by diff_id, and drops the least recently used over its bound", async () => {
    const cache = new MemoryLayerDatabasesCache(150);
    const t = performance.now();
    await imagePackages([root], store, { cache });
    const cold = performance.now() - t;
    const warm = performance.now();
    expect((await imagePackages([root], store, { cache })).length).toBeGreaterThan(80);
    // A hit reads nothing: no pass over the 170 MB tar.
    expect(performance.now() - warm).toBeLessThan(Math.max(50, cold / 4));
    // Bounded by packages: 96 + 1 fit 150; 60 more push the least recently used out.
    const part = (n: number) => ({
      removed: [],
      opaque: [],
      files: [{ path: 'var/lib/dpkg/status', packages: Array.from({ length: n }, (_, i) => ({ type: 'deb' as const, name: `p${i}`, version: '1', architecture: 'all' })) }],
    });
    const small = new MemoryLayerDatabasesCache(150);
    small.set('a', part(95));
    small.set('b', part(0));
    small.set('c', part(59));
    expect([small.get('a'), small.get('b'), small.get('c')].map((v) => v !== undefined)).toEqual([false, true, true]);
    // The least recently used go first until the new part fits: b, then c (read after b).
    expect(small.get('c')).toBeDefined();
    small.set('d', part(95));
    expect([small.get('b'), small.get('c'), small.get('d')].map((v) => v !== undefined)).toEqual([false, false, true]);
  }, 60_000);

  it('stops when its signal is aborted', async () => {
    const err = await rejection(imagePackages([root], store, { cache: new MemoryLayerDatabasesCache(), signal: AbortSignal.abort() }));
    expect(err.name).toBe('AbortError');
  });
});

describe('budgets', () => {
  it('refuses a status file of a million tiny paragraphs, naming the package budget', async () => {
    const many = await layer({ 'var/lib/dpkg/status': 'Package: a\n\n'.repeat(1_000_000) });
    const t = performance.now();
    const err = await rejection(imagePackages([many], store));
    expect(err).toBeInstanceOf(BudgetExceededError);
    expect((err as BudgetExceededError).setting).toBe('BALER_SBOM_MAX_PACKAGES');
    expect(performance.now() - t).toBeLessThan(5_000);
  }, 60_000);

  it('refuses a 100 MB field at its tar header, naming the database budget, and a 2 MB one naming the field budget', async () => {
    const huge = await layer({ 'var/lib/dpkg/status': `Package: a\nDescription: ${'x'.repeat(100 * 1024 ** 2)}\n` });
    const t = performance.now();
    const err = await rejection(imagePackages([huge], store));
    expect((err as BudgetExceededError).setting).toBe('BALER_SBOM_MAX_DATABASE_BYTES');
    expect(performance.now() - t).toBeLessThan(5_000);
    const long = await layer({ 'var/lib/dpkg/status': `Package: a\nStatus: install ok installed\nDescription: x\n ${'x'.repeat(2 * 1024 ** 2)}\n` });
    const fieldErr = await rejection(imagePackages([long], store));
    expect((fieldErr as BudgetExceededError).setting).toBe('BALER_SBOM_MAX_FIELD_BYTES');
    expect(fieldErr.message).toContain('/var/lib/dpkg/status');
  }, 60_000);
});
