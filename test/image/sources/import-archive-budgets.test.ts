/**
 * fromImage {blob} against archives built to cost: tens of thousands of images and names,
 * wide and deep OCI indexes, many members, long paths, error lists without end, a compressed
 * archive that asks for a huge window (generators in hostile-archives.ts). Each import either
 * fails at once with a BudgetExceededError naming its setting or picks the right image, and the
 * work it does (counted, never timed tightly) grows with the archive, not with its square.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { BudgetExceededError } from '../../../src/budget.ts';
import { loadConfig } from '../../../src/config.ts';
import { ArchiveReader } from '../../../src/image/sources/archive/archive-reader.ts';
import { ARCHIVE_BUDGET_SETTINGS, DEFAULT_ARCHIVE_BUDGETS } from '../../../src/image/sources/archive/budgets.ts';
import { ArchiveImportError, importArchive, type ImportOptions } from '../../../src/image/sources/archive/import-archive.ts';
import { FsBlobStore } from '../../../src/store/fs-blob-store.ts';
import { dockerArchive, LAYER, manyImagesArchive, manyMembersArchive, manyNamesArchive, nestedOciIndex, sha, tallOciImage, tarOf, wideOciIndex, xzWithDictionary } from './hostile-archives.ts';

let work: string;
let store: FsBlobStore;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'baler-archive-budgets-'));
  store = await FsBlobStore.create(join(work, 'store'));
});

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

afterEach(() => {
  vi.restoreAllMocks();
});

async function importBuffer(archive: Buffer, opts: ImportOptions = {}) {
  const { digest } = await store.put(Readable.from([archive]));
  return importArchive(store, digest, opts);
}

async function rejection(archive: Buffer, opts: ImportOptions = {}): Promise<unknown> {
  return importBuffer(archive, opts).then(
    () => expect.unreachable('the import succeeded'),
    (e: unknown) => e,
  );
}

/** The import fails with the budget of `setting` at `limit`; returns the message. */
async function overBudget(archive: Buffer, opts: ImportOptions, setting: string, limit: number): Promise<string> {
  const err = await rejection(archive, opts);
  expect(err).toBeInstanceOf(BudgetExceededError);
  expect(err).toMatchObject({ setting, limit });
  return (err as Error).message;
}

async function importFailure(archive: Buffer, opts: ImportOptions = {}): Promise<string> {
  const err = await rejection(archive, opts);
  expect(err).toBeInstanceOf(ArchiveImportError);
  return (err as Error).message;
}

/** Counts ArchiveReader.file calls: each resolves a path through links (the unit of planning work). */
function countLinkResolutions(): { readonly calls: number } {
  const spy = vi.spyOn(ArchiveReader.prototype, 'file');
  return {
    get calls() {
      return spy.mock.calls.length;
    },
  };
}

describe('images and names (attack 2: 25k images, 25k repository names)', () => {
  // 25,000 images named by `repositories` through symlinks, as containers/image writes them.
  let attack: ReturnType<typeof manyImagesArchive>;
  beforeAll(() => {
    attack = manyImagesArchive({ images: 25_000, layout: 'linked', target: 24_999 });
  }, 120_000);

  it('fails at once on the default budget, naming BALER_ARCHIVE_MAX_IMAGES, before any name is matched', async () => {
    const resolutions = countLinkResolutions();
    const message = await overBudget(attack.archive, {}, 'BALER_ARCHIVE_MAX_IMAGES', 1000);
    expect(message).toBe('manifest.json lists 25000 images, more than 1000 (the budget BALER_ARCHIVE_MAX_IMAGES is 1000)');
    // manifest.json itself, and nothing else.
    expect(resolutions.calls).toBe(1);
  });

  it('with the budgets raised, picks the right image in work linear in images + names', async () => {
    const resolutions = countLinkResolutions();
    const imported = await importBuffer(attack.archive, { name: 'repo/24999', budgets: { maxImages: 25_000, maxNames: 25_000 } });
    expect(imported).toMatchObject({ imageId: attack.config, repoTags: ['repo/24999:latest'] });
    // Each top layer and each name's layer resolved once (plus the reads of the import).
    expect(resolutions.calls).toBeLessThan(2 * 25_000 + 20);
  }, 120_000);

  it('matches names to images without resolving each name against each image', async () => {
    // At the default budget; before, each of the 1000 names resolved all 1000 top layers.
    const { archive, config } = manyImagesArchive({ images: 1000, layout: 'linked', target: 500 });
    const resolutions = countLinkResolutions();
    expect(await importBuffer(archive, { name: 'repo/500' })).toMatchObject({ imageId: config, repoTags: ['repo/500:latest'] });
    expect(resolutions.calls).toBeLessThan(2 * 1000 + 20);
  });

  it('matches names to images by path without comparing each name with each image (direct layout, 25k × 25k)', async () => {
    // No links to count here: before, 625M path normalisations (minutes); a generous bound.
    const { archive, config } = manyImagesArchive({ images: 25_000, layout: 'direct', target: 7 });
    const started = Date.now();
    expect(await importBuffer(archive, { name: 'repo/7', budgets: { maxImages: 25_000, maxNames: 25_000 } })).toMatchObject({ imageId: config });
    expect(Date.now() - started).toBeLessThan(30_000);
  }, 120_000);

  it('counts RepoTags and `repositories` together against BALER_ARCHIVE_MAX_NAMES', async () => {
    // 600 images, each with 8 RepoTags and 1 repositories name: 5400 names.
    const { archive } = manyImagesArchive({ images: 600, layout: 'direct', target: 0, tagsPerImage: 8 });
    expect(await overBudget(archive, { budgets: { maxNames: 5000 } }, 'BALER_ARCHIVE_MAX_NAMES', 5000)).toBe(
      'the archive records more than 5000 image names (the budget BALER_ARCHIVE_MAX_NAMES is 5000)',
    );
    expect(await importBuffer(archive, { name: 'tagged/0', tag: '3', budgets: { maxNames: 5400 } })).toMatchObject({ repoTags: expect.arrayContaining(['tagged/0:3', 'repo/0:latest']) });
    await overBudget(manyNamesArchive(DEFAULT_ARCHIVE_BUDGETS.maxNames + 1), {}, 'BALER_ARCHIVE_MAX_NAMES', 10_000);
  });

  it('dedups the names of one image in linear time (300k distinct RepoTags, budget raised)', async () => {
    // Before: a pairwise scan, 4.5e10 comparisons. A generous bound.
    const started = Date.now();
    const imported = await importBuffer(manyNamesArchive(300_000), { budgets: { maxNames: 300_000 } });
    expect(imported.repoTags).toHaveLength(300_000);
    expect(Date.now() - started).toBeLessThan(30_000);
  }, 120_000);
});

describe('error texts', () => {
  it('an ambiguous pick names a handful of the images, then how many more', async () => {
    const { archive } = manyImagesArchive({ images: 2000, layout: 'direct', target: 0 });
    const message = await importFailure(archive, { budgets: { maxImages: 2000 } });
    const firstEight = Array.from({ length: 2000 }, (_, i) => `repo/${i}:latest`)
      .sort()
      .slice(0, 8);
    expect(message).toBe(`ambiguous: the archive holds ${firstEight.join(', ')}, … and 1992 more; set fromImageName/fromImageTag`);
    const missing = await importFailure(archive, { name: 'nothing', budgets: { maxImages: 2000 } });
    expect(missing).toMatch(/^the archive holds no image nothing \(any tag\); it holds repo\/0:latest, .*, … and 1992 more$/);
  });

  it("an image's many names are a handful too, each name clipped", async () => {
    const long = `${'l'.repeat(5000)}:1`;
    const archive = tarOf([
      {
        name: 'manifest.json',
        data: JSON.stringify([
          { Config: 'a.json', RepoTags: ['a:1', ...Array.from({ length: 500 }, (_, i) => `a:${i + 2}`)], Layers: [] },
          { Config: 'b.json', RepoTags: [long], Layers: [] },
        ]),
      },
    ]);
    const message = await importFailure(archive);
    expect(message).toMatch(/^ambiguous: the archive holds a:1 \(also a:2, a:3, a:4, … and 497 more\), l{100,}…; set fromImageName\/fromImageTag$/);
    expect(message.length).toBeLessThan(400);
  });

  it('no error is longer than BALER_MAX_ERROR_CHARS, whatever the archive quotes', async () => {
    // A config path of 100,000 characters that names no member.
    const path = `${'x'.repeat(100_000)}.json`;
    const archive = tarOf([{ name: 'manifest.json', data: JSON.stringify([{ Config: path, RepoTags: ['a:1'], Layers: [] }]) }]);
    const message = await importFailure(archive);
    // The path is shown clipped (printable), so the error stays well under the cap.
    expect(message.length).toBeLessThanOrEqual(DEFAULT_ARCHIVE_BUDGETS.maxErrorChars);
    expect(message).toMatch(/^image config: the archive has no member 'x+…x+\.json'/);
    expect(await importFailure(archive, { budgets: { maxErrorChars: 100 } })).toHaveLength(100);
  });

  it("an OCI index's platforms are listed a handful at a time", async () => {
    const message = await importFailure(nestedOciIndex(1, 50), { architecture: 's390x' });
    expect(message).toMatch(/has no linux\/s390x image; it has: linux\/amd64, linux\/arch1, .*, … and 42 more$/);
  });
});

describe('OCI indexes', () => {
  it('index.json with more manifests than BALER_ARCHIVE_MAX_IMAGES', async () => {
    expect(await overBudget(wideOciIndex(1001), {}, 'BALER_ARCHIVE_MAX_IMAGES', 1000)).toMatch(/^index\.json lists 1001 images, more than 1000 /);
    expect(await importBuffer(wideOciIndex(1000), { name: 'wide/0' })).toMatchObject({ repoTags: ['wide/0:1'] });
  });

  it('a nested index with more manifests than BALER_ARCHIVE_MAX_IMAGES', async () => {
    expect(await overBudget(nestedOciIndex(2, 1001), {}, 'BALER_ARCHIVE_MAX_IMAGES', 1000)).toMatch(/^image index sha256:[a-f0-9]{64} lists 1001 images, more than 1000 /);
    expect((await importBuffer(nestedOciIndex(2, 1000))).layers.map((l) => l.diffId)).toEqual([sha(LAYER)]);
  });

  it('name annotations count against BALER_ARCHIVE_MAX_NAMES', async () => {
    // 600 manifests with two name annotations each.
    await overBudget(wideOciIndex(600), { budgets: { maxNames: 1000 } }, 'BALER_ARCHIVE_MAX_NAMES', 1000);
  });

  it('indexes nested deeper than 4 levels', async () => {
    expect((await importBuffer(nestedOciIndex(4))).layers).toHaveLength(1);
    expect(await importFailure(nestedOciIndex(5))).toBe('image indexes nested deeper than 4 levels');
  });

  it("a manifest's layers are counted before any is read", async () => {
    // 200 layers, the last malformed: the count fails first.
    expect(await importFailure(tallOciImage(199))).toBe('the image has 200 layers, more than the limit of 125');
  });
});

describe('the tar of the archive', () => {
  it('more members than BALER_ARCHIVE_MAX_MEMBERS', async () => {
    expect(DEFAULT_ARCHIVE_BUDGETS.maxMembers).toBe(100_000);
    const archive = manyMembersArchive(60);
    expect(await overBudget(archive, { budgets: { maxMembers: 50 } }, 'BALER_ARCHIVE_MAX_MEMBERS', 50)).toBe('the archive has more than 50 members (the budget BALER_ARCHIVE_MAX_MEMBERS is 50)');
    expect(await importBuffer(archive, { budgets: { maxMembers: 63 } })).toMatchObject({ repoTags: ['x/y:1'] });
  });

  it('a JSON member over BALER_ARCHIVE_MAX_JSON_BYTES', async () => {
    const archive = dockerArchive([LAYER]);
    await overBudget(archive, { budgets: { maxJsonBytes: 100 } }, 'BALER_ARCHIVE_MAX_JSON_BYTES', 100);
  });

  it('a JSON member with more objects, arrays and keys than BALER_ARCHIVE_MAX_JSON_NODES is not parsed', async () => {
    // 1.5 MB that would parse into half a million objects (some 28 MB of heap; 20 MiB of them, 370 MB).
    const empties = tarOf([{ name: 'manifest.json', data: `[${'{},'.repeat(500_000)}{}]` }]);
    const parse = vi.spyOn(JSON, 'parse');
    expect(await overBudget(empties, {}, 'BALER_ARCHIVE_MAX_JSON_NODES', 500_000)).toBe(
      "manifest.json 'manifest.json' holds more than 500000 objects, arrays and keys (the budget BALER_ARCHIVE_MAX_JSON_NODES is 500000)",
    );
    expect(parse).not.toHaveBeenCalled();
    // Keys count, nesting counts; brackets and colons inside strings do not.
    const keys = tarOf([{ name: 'manifest.json', data: JSON.stringify(Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`k${i}`, 0]))) }]);
    await overBudget(keys, { budgets: { maxJsonNodes: 100 } }, 'BALER_ARCHIVE_MAX_JSON_NODES', 100);
    await overBudget(tarOf([{ name: 'manifest.json', data: `${'['.repeat(101)}${']'.repeat(101)}` }]), { budgets: { maxJsonNodes: 100 } }, 'BALER_ARCHIVE_MAX_JSON_NODES', 100);
    const inStrings = tarOf([{ name: 'manifest.json', data: JSON.stringify(['[{:\\"'.repeat(1000)]) }]);
    expect(await importFailure(inStrings, { budgets: { maxJsonNodes: 1 } })).toBe('manifest.json entry 1 is not an object');
  });

  it('member paths longer than 256 bytes (the index of members is held in memory)', async () => {
    const archive = dockerArchive([LAYER], { extra: [{ name: 'p'.repeat(257) }] });
    expect(await importFailure(archive)).toMatch(/^not an image archive \(tar\): path longer than 256 bytes/);
    expect(await importBuffer(dockerArchive([LAYER], { extra: [{ name: 'p'.repeat(256) }] }))).toMatchObject({ repoTags: ['x/y:1'] });
  });

  it('an xz archive asking for a 1 GiB dictionary is refused, not decoded', async () => {
    const message = await importFailure(xzWithDictionary(dockerArchive([LAYER]), 1024));
    expect(message).toMatch(/^the archive is not valid xz data: xz: .*Memory usage limit reached/);
    // The same archive with the dictionary xz chose imports.
    expect(await importBuffer(xzWithDictionary(dockerArchive([LAYER]), 1))).toMatchObject({ repoTags: ['x/y:1'] });
  });
});

describe('settings', () => {
  it('the worker reads every budget from its BALER_ setting, with the defaults when unset', () => {
    expect(loadConfig({}).archiveBudgets).toEqual(DEFAULT_ARCHIVE_BUDGETS);
    const settings = Object.entries(ARCHIVE_BUDGET_SETTINGS);
    const env = Object.fromEntries(settings.map(([, setting], i) => [setting, String(i + 1)]));
    expect(loadConfig(env).archiveBudgets).toEqual(Object.fromEntries(settings.map(([budget], i) => [budget, i + 1])));
    expect(() => loadConfig({ BALER_ARCHIVE_MAX_IMAGES: 'many' })).toThrow("BALER_ARCHIVE_MAX_IMAGES must be a non-negative integer, got 'many'");
  });
});
