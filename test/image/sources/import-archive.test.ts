/**
 * fromImage {blob}: archives made by real tools (see archive-fixtures.ts) import with the
 * layers and config skopeo reads from them; layers land in the store uncompressed and re-hash
 * to their diff_ids; the legacy chain is nixpkgs dockerTools'; tampered layers, ambiguous or missing
 * names and too many layers fail with ArchiveImportError.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, mkdtemp, open, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Digest } from '../../../src/digest.ts';
import { canonicalJson } from '../../../src/image/canonical-json.ts';
import { detectCompression } from '../../../src/image/compression.ts';
import type { StoredImage } from '../../../src/image/image.ts';
import { ArchiveImportError, importArchive, inspectArchive } from '../../../src/image/sources/archive/import-archive.ts';
import { indexTar } from '../../../src/image/tar-index.ts';
import type { BlobStore } from '../../../src/store/blob-store.ts';
import { FsBlobStore } from '../../../src/store/fs-blob-store.ts';
import { FIXTURE_NAMES, makeFixtures, skopeoConfig, type FixtureSet } from './archive-fixtures.ts';

let work: string;
let store: FsBlobStore;
let set: FixtureSet;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'baler-archive-import-'));
  set = await makeFixtures(work, await FsBlobStore.create(join(work, 'scratch')));
  store = await FsBlobStore.create(join(work, 'store'));
}, 180_000);

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

async function upload(path: string, into: BlobStore = store): Promise<Digest> {
  return (await into.put(createReadStream(path))).digest;
}

async function storedHash(digest: Digest): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of (await store.open(digest)) as AsyncIterable<Buffer>) hash.update(chunk);
  return `sha256:${hash.digest('hex')}`;
}

async function storedText(digest: Digest): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of (await store.open(digest)) as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

async function entryNames(digest: Digest): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of indexTar(await store.open(digest))) names.push(entry.name);
  return names;
}

/** What the store holds after an import: config, uncompressed layers, legacy jsons chained as nixpkgs dockerTools chains them. */
async function expectStored(imported: StoredImage): Promise<void> {
  expect(await storedHash(imported.imageId)).toBe(imported.imageId);
  const config = JSON.parse(await storedText(imported.imageId));
  let parent: string | undefined;
  for (const layer of imported.layers) {
    expect((await store.stat(layer.diffId))?.size).toBe(layer.size);
    expect(await storedHash(layer.diffId)).toBe(layer.diffId);
    const head = (await (await store.open(layer.diffId, { start: 0, end: 7 })).toArray()) as Buffer[];
    expect(detectCompression(Buffer.concat(head))).toBe('none');
    expect(layer.tarsum).toMatch(/^tarsum\.v1\+sha256:[a-f0-9]{64}$/);

    const json = JSON.parse(await storedText(layer.v1Json));
    expect(json).toMatchObject({ id: layer.v1Id, checksum: layer.tarsum, Size: layer.size, architecture: config.architecture, os: config.os });
    expect(json.parent).toBe(parent);
    expect(json.config).toEqual(config.config ?? {});
    const { id: _id, Size: _size, ...fields } = json;
    expect(createHash('sha256').update(canonicalJson(fields)).digest('hex')).toBe(layer.v1Id);
    parent = layer.v1Id;
  }
}

describe('imports every archive form real tools write', () => {
  it.each(FIXTURE_NAMES)('%s', async (name) => {
    const fx = set.fixtures[name];
    const expected = await skopeoConfig(work, fx.skopeoRef, fx.skopeoArgs);
    const imported = await importArchive(store, await upload(fx.path), { name: fx.name, tag: fx.tag, architecture: fx.architecture });
    expect(imported.imageId).toBe(expected.digest);
    expect(imported.layers.map((l) => l.diffId)).toEqual(expected.diffIds);
    expect(imported.repoTags).toEqual(fx.repoTags);
    await expectStored(imported);
    if (fx.topLayerHas) {
      const top = imported.layers.at(-1);
      expect(top).toBeDefined();
      const names = (await entryNames(top!.diffId)).map((n) => n.replace(/^\.\//, ''));
      for (const entry of fx.topLayerHas) expect(names).toContain(entry.replace(/^\.\//, ''));
    }
  });

  it("gives nixpkgs dockerTools' own archive back its legacy ids and layer jsons", async () => {
    const imported = await importArchive(store, await upload(set.fixtures['seed layout (baler sink)'].path), {});
    expect(imported.imageId).toBe(set.seedImage.imageId);
    expect(imported.layers.map((l) => l.v1Id)).toEqual(set.seedImage.layers.map((l) => l.v1Id));
    for (const [i, layer] of imported.layers.entries()) expect(await storedText(layer.v1Json)).toBe(set.seedImage.legacyJson[i]);
  });
});

/** A copy of an archive with one byte flipped `into` bytes into the data of its first member whose name matches. */
async function tamper(path: string, member: RegExp, into: number): Promise<string> {
  let offset: number | undefined;
  for await (const entry of indexTar(createReadStream(path))) {
    if (member.test(entry.name) && entry.type === 'file' && entry.size > into) {
      offset = entry.dataOffset + into;
      break;
    }
  }
  expect(offset, `no member ${member} in ${path}`).toBeDefined();
  const out = join(work, `tampered-${Math.random().toString(36).slice(2)}.tar`);
  await copyFile(path, out);
  const handle = await open(out, 'r+');
  try {
    const byte = Buffer.alloc(1);
    await handle.read(byte, 0, 1, offset);
    byte[0] = (byte[0] ?? 0) ^ 0xff;
    await handle.write(byte, 0, 1, offset);
  } finally {
    await handle.close();
  }
  return out;
}

describe('refuses', () => {
  it('a tampered plain layer, naming it', async () => {
    const path = await tamper(set.fixtures['podman save docker-archive'].path, /^[a-f0-9]{64}\.tar$/, 500_000);
    const err = await importArchive(store, await upload(path), {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ArchiveImportError);
    expect((err as Error).message).toMatch(/^layer 1 of 1 \([a-f0-9]{64}\.tar\) does not match its diff_id sha256:[a-f0-9]{64}: it hashes to sha256:/);
  });

  it.each([
    ['gzip', 'podman save oci-archive (gzip layers)'],
    ['zstd', 'skopeo copy oci-archive (zstd layers)'],
  ] as const)('a tampered %s layer, naming it', async (_kind, name) => {
    const layerDigest = await layerBlobOf(set.fixtures[name].path);
    const path = await tamper(set.fixtures[name].path, new RegExp(`blobs/sha256/${layerDigest}$`), 300_000);
    await expect(importArchive(store, await upload(path), {})).rejects.toThrow(new RegExp(`^layer 1 of 1 \\(blobs/sha256/${layerDigest}\\) (is not valid|does not match)`));
  });

  it('an ambiguous pick, naming the choices', async () => {
    const multi = await upload(set.fixtures['podman save -m, picked by name'].path);
    await expect(inspectArchive(store, multi, { name: 'imp/base' })).resolves.toEqual({ repoTags: ['localhost/imp/base:1'], layers: 1 });
    await expect(inspectArchive(store, multi, {})).rejects.toThrow(/^ambiguous: /);
    const podman = importArchive(store, multi, {});
    await expect(podman).rejects.toThrow(ArchiveImportError);
    await expect(podman).rejects.toThrow('ambiguous: the archive holds localhost/imp/base:1, localhost/imp/other:2; set fromImageName/fromImageTag');
    const docker = importArchive(store, await upload(set.fixtures['docker 20.10 save, picked by tag'].path), {});
    await expect(docker).rejects.toThrow('ambiguous: the archive holds localhost/imp/base:1 (also imp/base:latest), localhost/imp/other:2; set fromImageName/fromImageTag');
  });

  it('a name the archive does not hold, naming the choices', async () => {
    const digest = await upload(set.fixtures['docker 20.10 save, picked by tag'].path);
    await expect(importArchive(store, digest, { name: 'imp/base', tag: '3' })).rejects.toThrow(
      'the archive holds no image imp/base:3; it holds localhost/imp/base:1 (also imp/base:latest), localhost/imp/other:2',
    );
    await expect(importArchive(store, await upload(set.fixtures['podman save docker-archive'].path), { name: 'other' })).rejects.toThrow(
      'the archive holds no image other (any tag); it holds localhost/imp/base:1',
    );
  });

  it('an index without the architecture asked for', async () => {
    const digest = await upload(set.fixtures['OCI index, linux/amd64'].path);
    await expect(importArchive(store, digest, { architecture: 's390x' })).rejects.toThrow(/has no linux\/s390x image; it has: linux\/arm64\/v8, linux\/amd64$/);
  });

  it('more layers than maxLayers, before any layer is read', async () => {
    const fresh = await FsBlobStore.create(join(work, 'store-max-layers'));
    const digest = await upload(set.fixtures['podman commit (whiteouts)'].path, fresh);
    await expect(importArchive(fresh, digest, { maxLayers: 1 })).rejects.toThrow('the image has 2 layers, more than the limit of 1');
    expect(await readdir(join(work, 'store-max-layers', 'blobs', 'sha256'))).toEqual([digest.slice(7)]);
  });
});

async function layerBlobOf(archive: string): Promise<string> {
  // The biggest blob of an OCI archive is its layer.
  let best = { name: '', size: -1 };
  for await (const entry of indexTar(createReadStream(archive))) if (entry.size > best.size) best = { name: entry.name, size: entry.size };
  return best.name.split('/').pop() as string;
}
