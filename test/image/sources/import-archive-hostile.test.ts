/**
 * fromImage {blob} against archives no tool would write: hand-crafted in memory with baler's
 * tar header encoder. Hostile paths, oversized JSON, too many layers, wrong digests, corrupt
 * compressed layers, duplicate layers; and the name-picking rules on their own.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BudgetExceededError } from '../../../src/budget.ts';
import { ArchiveImportError, importArchive, type ImportOptions } from '../../../src/image/sources/archive/import-archive.ts';
import type { Platform } from '../../../src/image/platform.ts';
import { parseRefName, parseReference, pickImage, type Candidate } from '../../../src/image/sources/archive/select-image.ts';
import { FsBlobStore } from '../../../src/store/fs-blob-store.ts';
import { configFor, dockerArchive, hex, LAYER, sha, tarOf } from './hostile-archives.ts';

let work: string;
let store: FsBlobStore;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'baler-archive-hostile-'));
  store = await FsBlobStore.create(join(work, 'store'));
});

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

async function importBuffer(archive: Buffer, opts: ImportOptions = {}) {
  const { digest } = await store.put(Readable.from([archive]));
  return importArchive(store, digest, opts);
}

async function failure(archive: Buffer, opts: ImportOptions = {}): Promise<string> {
  const err = await importBuffer(archive, opts).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ArchiveImportError);
  return (err as Error).message;
}

describe('hand-crafted archives', () => {
  it('imports a minimal one, gzip layers included, and duplicate layers with their own legacy ids', async () => {
    const gz = gzipSync(LAYER);
    const imported = await importBuffer(dockerArchive([LAYER, gz, LAYER], { diffIds: [sha(LAYER), sha(LAYER), sha(LAYER)] }));
    expect(imported.layers.map((l) => l.diffId)).toEqual([sha(LAYER), sha(LAYER), sha(LAYER)]);
    expect(new Set(imported.layers.map((l) => l.v1Id)).size).toBe(3);
    expect(new Set(imported.layers.map((l) => l.tarsum)).size).toBe(1);
    expect(imported.repoTags).toEqual(['x/y:1']);
  });

  it('refuses more than 125 layers before reading any', async () => {
    const fresh = await FsBlobStore.create(join(work, 'fresh'));
    const diffIds = Array.from({ length: 126 }, (_, i) => sha(`layer ${i}`));
    // The layer members do not even exist: the count alone fails the import.
    const archive = dockerArchive([], { diffIds, layerPaths: diffIds.map((d) => `${hex(d)}/layer.tar`) });
    const { digest } = await fresh.put(Readable.from([archive]));
    await expect(importArchive(fresh, digest, {})).rejects.toThrow('the image has 126 layers, more than the limit of 125');
    expect(await readdir(join(work, 'fresh', 'blobs', 'sha256'))).toEqual([hex(digest)]);
  });

  it('names the layer whose content does not match its diff_id', async () => {
    const other = tarOf([{ name: 'evil', data: 'x' }]);
    expect(await failure(dockerArchive([LAYER, other], { diffIds: [sha(LAYER), sha(LAYER)] }))).toBe(
      `layer 2 of 2 (l1/layer.tar) does not match its diff_id ${sha(LAYER)}: it hashes to ${sha(other)}`,
    );
  });

  it('refuses a corrupt gzip or zstd layer', async () => {
    const gz = gzipSync(LAYER);
    gz[gz.length - 6] = (gz[gz.length - 6] ?? 0) ^ 0xff; // the CRC
    expect(await failure(dockerArchive([gz], { diffIds: [sha(LAYER)] }))).toMatch(/^layer 1 of 1 \(l0\/layer\.tar\) is not valid gzip data: /);
    const zstd = Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), Buffer.from('not really zstd')]);
    expect(await failure(dockerArchive([zstd], { diffIds: [sha(LAYER)] }))).toMatch(/^layer 1 of 1 \(l0\/layer\.tar\) is not valid zstd data: zstd: /);
  });

  it('refuses a config whose name states another digest', async () => {
    const config = configFor([sha(LAYER)]);
    const wrong = sha('something else');
    const archive = tarOf([
      { name: 'l0/layer.tar', data: LAYER },
      { name: `${hex(wrong)}.json`, data: config },
      { name: 'manifest.json', data: JSON.stringify([{ Config: `${hex(wrong)}.json`, RepoTags: null, Layers: ['l0/layer.tar'] }]) },
    ]);
    expect(await failure(archive)).toBe(`image config ${hex(wrong)}.json does not match its digest ${wrong}: its content hashes to ${sha(config)}`);
  });

  it('refuses a layer count that differs from the diff_ids', async () => {
    expect(await failure(dockerArchive([LAYER], { diffIds: [sha(LAYER), sha(LAYER)] }))).toBe("the image's manifest lists 1 layer but its config 2 diff_ids");
  });

  it("refuses '..' in member names, manifest paths and link targets", async () => {
    expect(await failure(tarOf([{ name: '../evil', data: 'x' }]))).toBe("archive member '../evil' contains '..'");
    expect(await failure(dockerArchive([LAYER], { layerPaths: ['l0/../../etc/passwd'] }))).toBe("layer 1 of 1 (l0/../../etc/passwd): path 'l0/../../etc/passwd' contains '..'");
    const escaping = dockerArchive([LAYER], { layerPaths: ['link/layer.tar'], extra: [{ name: 'link/layer.tar', type: 'symlink', linkname: '../../l0/layer.tar' }] });
    expect(await failure(escaping)).toBe("layer 1 of 1 (link/layer.tar): link 'link/layer.tar' -> '../../l0/layer.tar' points outside the archive");
    const inLayer = tarOf([
      { name: 'ok', data: 'x' },
      { name: 'a/../../evil', data: 'x' },
    ]);
    expect(await failure(dockerArchive([inLayer]))).toBe("layer 1 of 1 (l0/layer.tar): entry 'a/../../evil' contains '..'");
  });

  it("names images by `repositories` when manifest.json has no RepoTags (nixpkgs dockerTools' and Docker's layout, and via links)", async () => {
    const other = tarOf([{ name: 'other', data: 'other\n' }]);
    const configA = configFor([sha(LAYER)]);
    const configB = configFor([sha(other)]);
    const idA = 'a'.repeat(64);
    const idB = 'b'.repeat(64);
    const archive = tarOf([
      { name: `${idA}/layer.tar`, data: LAYER },
      { name: `${hex(sha(other))}.tar`, data: other },
      { name: `${idB}/layer.tar`, type: 'symlink', linkname: `../${hex(sha(other))}.tar` },
      { name: `${hex(sha(configA))}.json`, data: configA },
      { name: `${hex(sha(configB))}.json`, data: configB },
      {
        name: 'manifest.json',
        data: JSON.stringify([
          { Config: `${hex(sha(configA))}.json`, RepoTags: null, Layers: [`${idA}/layer.tar`] },
          { Config: `${hex(sha(configB))}.json`, Layers: [`${hex(sha(other))}.tar`] },
        ]),
      },
      { name: 'repositories', data: JSON.stringify({ 'seed/a': { '1': idA }, b: { latest: idB } }) },
    ]);
    expect(await failure(archive)).toBe('ambiguous: the archive holds b:latest, seed/a:1; set fromImageName/fromImageTag');
    expect(await importBuffer(archive, { name: 'b' })).toMatchObject({ imageId: sha(configB), repoTags: ['b:latest'] });
    expect(await importBuffer(archive, { name: 'seed/a', tag: '1' })).toMatchObject({ imageId: sha(configA), repoTags: ['seed/a:1'] });
  });

  it('follows links inside the archive, as docker save writes shared layers', async () => {
    const archive = dockerArchive([LAYER], {
      layerPaths: ['top/layer.tar'],
      extra: [
        { name: 'top/layer.tar', type: 'symlink', linkname: '../mid/layer.tar' },
        { name: 'mid/layer.tar', type: 'link', linkname: 'l0/layer.tar' },
      ],
    });
    expect((await importBuffer(archive)).layers.map((l) => l.diffId)).toEqual([sha(LAYER)]);
    const loop = dockerArchive([LAYER], {
      layerPaths: ['a'],
      extra: [
        { name: 'a', type: 'symlink', linkname: 'b' },
        { name: 'b', type: 'symlink', linkname: 'a' },
      ],
    });
    expect(await failure(loop)).toMatch(/more than 16 links/);
  });

  it('refuses JSON members over 20 MiB: a budget', async () => {
    const big = Buffer.alloc(20 * 1024 * 1024 + 1, 0x20);
    const err = await importBuffer(tarOf([{ name: 'manifest.json', data: big }])).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BudgetExceededError);
    expect(err).toMatchObject({ setting: 'BALER_ARCHIVE_MAX_JSON_BYTES', limit: 20971520 });
    expect((err as Error).message).toBe(`manifest.json 'manifest.json' is ${big.length} bytes, more than the JSON budget (the budget BALER_ARCHIVE_MAX_JSON_BYTES is 20971520)`);
  });

  it('refuses what is not an image archive', async () => {
    expect(await failure(Buffer.from('hello world\n'.repeat(100)))).toMatch(/^not an image archive \(tar\): not a tar archive: bad header checksum/);
    expect(await failure(LAYER)).toBe('not an image archive: it has neither manifest.json (docker-archive) nor index.json (OCI layout)');
    expect(await failure(gzipSync(Buffer.from('not a tar')))).toMatch(/^not an image archive \(tar\)/);
    expect(await failure(tarOf([{ name: 'manifest.json', data: '{"not": "a list"}' }]))).toBe('manifest.json is not a list of images');
    expect(await failure(tarOf([{ name: 'manifest.json', data: '[{' }]))).toMatch(/^manifest.json 'manifest.json' is not valid JSON/);
    await expect(importArchive(store, sha('never uploaded'), {})).rejects.toThrow(`blob ${sha('never uploaded')} not found`);
  });

  it('refuses OCI blobs that do not match their digests', async () => {
    const config = configFor([sha(LAYER)]);
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha(LAYER), size: LAYER.length }],
    });
    const index = JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha(manifest), size: manifest.length }] });
    const layout = (layer: Buffer) =>
      tarOf([
        { name: 'oci-layout', data: '{"imageLayoutVersion":"1.0.0"}' },
        { name: 'index.json', data: index },
        { name: `blobs/sha256/${hex(sha(manifest))}`, data: manifest },
        { name: `blobs/sha256/${hex(sha(config))}`, data: config },
        { name: `blobs/sha256/${hex(sha(LAYER))}`, data: layer },
      ]);
    expect((await importBuffer(layout(LAYER))).layers.map((l) => l.diffId)).toEqual([sha(LAYER)]);
    // Same content, gzip'd under the uncompressed blob's name: the diff_id matches, the blob digest does not.
    const gz = gzipSync(LAYER);
    expect(await failure(layout(gz))).toBe(`layer 1 of 1 (blobs/sha256/${hex(sha(LAYER))}) does not match its digest ${sha(LAYER)}: it hashes to ${sha(gz)}`);
  });
});

describe('picking an image', () => {
  /** A candidate named by `refs`, for the `platforms` the archive states (none given: it states none). */
  const c = (refs: string[], ...platforms: Platform[]): Candidate<string> & { platforms?: Platform[] } => ({
    names: refs.map((r) => parseRefName(r)).filter((n) => n !== undefined),
    label: 'an untagged image (config x.json)',
    value: refs.join(',') || 'untagged',
    ...(platforms.length > 0 ? { platforms } : {}),
  });
  const statedPlatforms = async (cand: Candidate<string> & { platforms?: Platform[] }) => cand.platforms;
  const picked = (cands: Candidate<string>[], sel: { name?: string; tag?: string; architecture?: string; variant?: string }) => pickImage(cands, { architecture: 'amd64', ...sel }, statedPlatforms);
  const pick = async (cands: Candidate<string>[], sel: { name?: string; tag?: string; architecture?: string; variant?: string }) => (await picked(cands, sel)).value;

  it('parses references as tools record them', () => {
    expect(parseReference('localhost:5000/a/b:1')).toEqual({ name: 'localhost:5000/a/b', tag: '1' });
    expect(parseReference('localhost:5000/a/b')).toEqual({ name: 'localhost:5000/a/b', tag: 'latest' });
    expect(parseReference('a@sha256:00')).toBeUndefined();
    expect(parseRefName('1.0')).toEqual({ tag: '1.0' });
  });

  it('takes the only image without a name, and by name, tag or both', async () => {
    expect(await pick([c([])], {})).toBe('untagged');
    const all = [c(['docker.io/library/busybox:1', 'busybox:latest']), c(['localhost/app:1']), c(['app:2'])];
    expect(await pick(all, { name: 'busybox' })).toBe('docker.io/library/busybox:1,busybox:latest');
    expect(await pick(all, { name: 'app', tag: '1' })).toBe('localhost/app:1');
    expect(await pick(all, { tag: '2' })).toBe('app:2');
    await expect(pick(all, { name: 'app' })).rejects.toThrow('ambiguous: app (any tag) matches several images of the archive: app:2, localhost/app:1; set fromImageName and fromImageTag');
    await expect(pick(all, {})).rejects.toThrow('ambiguous: the archive holds app:2, docker.io/library/busybox:1 (also busybox:latest), localhost/app:1; set fromImageName/fromImageTag');
    await expect(pick([c([]), c([])], {})).rejects.toThrow('ambiguous: the archive holds an untagged image (config x.json), an untagged image (config x.json)');
    await expect(pick([c([])], { name: 'x' })).rejects.toThrow('the archive holds no image x (any tag); it holds an untagged image (config x.json)');
  });

  it('matches a tag-only OCI ref name by tag', async () => {
    expect(await pick([c(['1.0']), c(['2.0'])], { name: 'whatever', tag: '2.0' })).toBe('2.0');
  });

  const linux = (architecture: string, variant?: string): Platform => ({ os: 'linux', architecture, ...(variant ? { variant } : {}) });

  it('resolves entries of one name by platform', async () => {
    const arm = c(['app:1'], linux('arm64', 'v8'));
    const amd = c(['app:1'], linux('amd64'));
    expect(await pick([arm, amd], {})).toBe('app:1');
    expect(await picked([arm, amd], { architecture: 'arm64' })).toBe(arm);
    await expect(pick([arm, amd], { architecture: 'riscv64' })).rejects.toThrow('the archive has no linux/riscv64 image; it has: linux/amd64, linux/arm64/v8');
    await expect(pick([arm, amd], { name: 'app', architecture: 'riscv64' })).rejects.toThrow('the archive has no linux/riscv64 image app (any tag); it has: linux/amd64, linux/arm64/v8');
  });

  it('tells images of different names apart by platform when none is named (multi-image docker archives)', async () => {
    const amd = c(['app:amd64'], linux('amd64'));
    const arm = c(['app:arm64'], linux('arm64'));
    const s390x = c(['other:1'], linux('s390x'));
    expect(await picked([amd, arm, s390x], { architecture: 'arm64' })).toBe(arm);
    expect(await picked([amd, arm, s390x], {})).toBe(amd);
    expect(await picked([amd, arm, s390x], { name: 'app', architecture: 'arm64' })).toBe(arm);
    await expect(pick([amd, s390x], { architecture: 'arm64' })).rejects.toThrow('the archive has no linux/arm64 image; it has: linux/amd64, linux/s390x');
    // Two images of the platform, named differently: only the user can tell.
    await expect(pick([amd, c(['app:also'], linux('amd64')), arm], {})).rejects.toThrow('ambiguous: the archive holds app:also, app:amd64; set fromImageName/fromImageTag');
    // One whose platform the archive does not state could be the one: ambiguous as before.
    await expect(pick([arm, c(['app:what'])], { architecture: 'arm64' })).rejects.toThrow('ambiguous: the archive holds app:arm64, app:what; set fromImageName/fromImageTag');
  });

  it('prefers the default variant, takes another when it is all there is, and honours a variant asked for', async () => {
    const v8 = c(['app:1'], linux('arm64', 'v8'));
    const bare = c(['app:1'], linux('arm64'));
    const v9 = c(['app:1'], linux('arm64', 'v9'));
    expect(await picked([v9, v8], { architecture: 'arm64' })).toBe(v8);
    expect(await picked([v9, bare], { architecture: 'arm64' })).toBe(bare);
    expect(await picked([v9], { architecture: 'arm64' })).toBe(v9);
    expect(await picked([v8, v9], { architecture: 'arm64', variant: 'v9' })).toBe(v9);
    const armv6 = c(['app:1'], linux('arm', 'v6'));
    const armv7 = c(['app:1'], linux('arm', 'v7'));
    expect(await picked([armv6, armv7], { architecture: 'arm', variant: 'v7' })).toBe(armv7);
    await expect(pick([armv6, armv7], { architecture: 'arm', variant: 'v5' })).rejects.toThrow('the archive has no linux/arm/v5 image; it has: linux/arm/v6, linux/arm/v7');
  });
});
