/**
 * fromImage {blob} resolves to the build's platform: an OCI index (flat or nested, its
 * entries stating a platform or only their configs saying it), a multi-image docker-archive
 * (by the configs' architecture when no image is named; a named one's checked), a single image
 * of another platform refused; each missing platform fails naming the platforms there are.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BudgetExceededError } from '../../../src/budget.ts';
import { ArchiveImportError, importArchive, type ImportOptions } from '../../../src/image/sources/archive/import-archive.ts';
import { FsBlobStore } from '../../../src/store/fs-blob-store.ts';
import { hex, sha, tarOf, wideOciIndex } from './hostile-archives.ts';
import { dockerPlatformArchive, ociPlatformArchive, platformImage } from './platform-archives.ts';

let work: string;
let store: FsBlobStore;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'baler-archive-platform-'));
  store = await FsBlobStore.create(join(work, 'store'));
});

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

async function importBuffer(archive: Buffer, opts: ImportOptions = {}) {
  const { digest } = await store.put(Readable.from([archive]));
  return importArchive(store, digest, opts);
}

async function importFailure(archive: Buffer, opts: ImportOptions = {}): Promise<string> {
  const err = await importBuffer(archive, opts).then(
    () => expect.unreachable('the import succeeded'),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ArchiveImportError);
  return (err as Error).message;
}

const amd64 = platformImage({ architecture: 'amd64' });
const arm64 = platformImage({ architecture: 'arm64', variant: 'v8' });
const s390x = platformImage({ architecture: 's390x' });

describe('an OCI index', () => {
  describe.each([
    ['nested in index.json, entries with platform (skopeo, buildah, Docker 25)', { nested: true, platforms: true }],
    ['nested in index.json, entries without platform (configs say)', { nested: true, platforms: false }],
    ['as index.json itself, entries with platform', { nested: false, platforms: true }],
    ['as index.json itself, entries without platform (configs say)', { nested: false, platforms: false }],
  ] as const)('%s', (_form, form) => {
    const archive = ociPlatformArchive([amd64, arm64], { ...form, name: 'multi:1' });

    it('resolves to the platform asked, amd64 by default', async () => {
      expect((await importBuffer(archive, { architecture: 'arm64' })).imageId).toBe(arm64.configDigest);
      expect((await importBuffer(archive, { architecture: 'amd64' })).imageId).toBe(amd64.configDigest);
      expect((await importBuffer(archive)).imageId).toBe(amd64.configDigest);
      expect((await importBuffer(archive, { architecture: 'arm64', variant: 'v8', name: 'multi', tag: '1' })).imageId).toBe(arm64.configDigest);
    });

    it('fails for a platform it lacks, naming those it has', async () => {
      expect(await importFailure(archive, { architecture: 's390x' })).toMatch(/has no linux\/s390x image; it has: linux\/amd64, linux\/arm64\/v8$/);
      expect(await importFailure(archive, { architecture: 'arm64', variant: 'v9' })).toMatch(/has no linux\/arm64\/v9 image; it has: linux\/amd64, linux\/arm64\/v8$/);
    });
  });

  it('a single entry stating another platform is refused, as is a single image whose config does', async () => {
    expect(await importFailure(ociPlatformArchive([s390x], { nested: false, platforms: true }), { architecture: 'arm64' })).toBe('the archive has no linux/arm64 image; it has: linux/s390x');
    expect(await importFailure(ociPlatformArchive([s390x], { nested: false, platforms: false, name: 'one:1' }), { architecture: 'arm64', name: 'one' })).toBe(
      'the archive has no linux/arm64 image one (any tag); it has: linux/s390x',
    );
  });

  it("an index entry's platform is what the image is taken for (as registries' indexes are)", async () => {
    // An entry says arm64 of an image whose config says nothing of its architecture.
    const unstated = platformImage({ architecture: 'arm64' }, { stated: false });
    expect((await importBuffer(ociPlatformArchive([amd64, unstated], { nested: true }), { architecture: 'arm64' })).imageId).toBe(unstated.configDigest);
  });

  it('an entry of an index that states no platform, nor its config, fits no platform', async () => {
    const unstated = platformImage({ architecture: 'arm64' }, { stated: false });
    expect(await importFailure(ociPlatformArchive([amd64, unstated], { nested: true, platforms: false }), { architecture: 'arm64' })).toMatch(
      /has no linux\/arm64 image; it has: linux\/amd64, unknown platform$/,
    );
  });
});

describe('a multi-image docker-archive', () => {
  const archive = dockerPlatformArchive([
    { image: amd64, repoTags: ['app:amd64'] },
    { image: arm64, repoTags: ['app:arm64'] },
    { image: s390x, repoTags: ['other:1'] },
  ]);

  it('without a name, picks the image whose config is for the platform', async () => {
    expect(await importBuffer(archive, { architecture: 'arm64' })).toMatchObject({ imageId: arm64.configDigest, repoTags: ['app:arm64'] });
    expect(await importBuffer(archive, { architecture: 's390x' })).toMatchObject({ imageId: s390x.configDigest, repoTags: ['other:1'] });
    expect(await importBuffer(archive)).toMatchObject({ imageId: amd64.configDigest, repoTags: ['app:amd64'] });
    expect(await importBuffer(archive, { name: 'app', architecture: 'arm64' })).toMatchObject({ imageId: arm64.configDigest });
    expect(await importFailure(archive, { architecture: 'riscv64' })).toBe('the archive has no linux/riscv64 image; it has: linux/amd64, linux/arm64/v8, linux/s390x');
    expect(await importFailure(archive, { name: 'app', architecture: 's390x' })).toBe('the archive has no linux/s390x image app (any tag); it has: linux/amd64, linux/arm64/v8');
  });

  it('a named image of another platform is refused, naming its platform', async () => {
    expect(await importFailure(archive, { name: 'app', tag: 'amd64', architecture: 'arm64' })).toBe('the archive has no linux/arm64 image app:amd64; it has: linux/amd64');
    expect(await importBuffer(archive, { name: 'app', tag: 'arm64', architecture: 'arm64' })).toMatchObject({ imageId: arm64.configDigest });
  });

  it('two images of the platform asked, of different names, stay ambiguous', async () => {
    const two = dockerPlatformArchive([
      { image: amd64, repoTags: ['a:1'] },
      { image: platformImage({ architecture: 'amd64', os: 'linux' }), repoTags: ['b:1'] },
      { image: arm64, repoTags: ['c:1'] },
    ]);
    expect(await importFailure(two)).toBe('ambiguous: the archive holds a:1, b:1; set fromImageName/fromImageTag');
    expect(await importBuffer(two, { architecture: 'arm64' })).toMatchObject({ repoTags: ['c:1'] });
  });
});

describe('a single image', () => {
  it('of another platform is refused; of the platform, or stating none, is taken', async () => {
    const one = (image: ReturnType<typeof platformImage>) => dockerPlatformArchive([{ image, repoTags: ['one:1'] }]);
    expect(await importFailure(one(arm64))).toBe('the archive has no linux/amd64 image; it has: linux/arm64/v8');
    expect(await importFailure(one(platformImage({ architecture: 'amd64', os: 'windows' })))).toBe('the archive has no linux/amd64 image; it has: windows/amd64');
    expect((await importBuffer(one(arm64), { architecture: 'arm64' })).imageId).toBe(arm64.configDigest);
    const unstated = platformImage({ architecture: 'arm64' }, { stated: false });
    expect((await importBuffer(one(unstated), { architecture: 's390x' })).imageId).toBe(unstated.configDigest);
  });
});

describe('budgets hold while platforms are read', () => {
  it('an index an entry leads to, over BALER_ARCHIVE_MAX_IMAGES, fails the import at the budget', async () => {
    const wide = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: Array.from({ length: 1001 }, (_, i) => ({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha(`m${i}`), size: 1, platform: { os: 'linux', architecture: 'amd64' } })),
    });
    // Two unnamed entries without platform: telling them apart reads the wide index.
    const index = {
      schemaVersion: 2,
      manifests: [
        { digest: sha(wide), size: wide.length },
        { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha(arm64.manifest), size: arm64.manifest.length },
      ],
    };
    const archive = tarOf([
      { name: 'index.json', data: JSON.stringify(index) },
      { name: `blobs/sha256/${hex(sha(wide))}`, data: wide },
      ...[arm64.manifest, arm64.config, arm64.layer].map((data) => ({ name: `blobs/sha256/${hex(sha(data))}`, data })),
    ]);
    const err = await importBuffer(archive, { architecture: 'arm64' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BudgetExceededError);
    expect(err).toMatchObject({ setting: 'BALER_ARCHIVE_MAX_IMAGES', limit: 1000 });
  });

  it('of a thousand unnamed images, one whose platform cannot be read makes the pick ambiguous at once', async () => {
    const message = await importFailure(wideOciIndex(1000));
    expect(message).toMatch(/^ambiguous: the archive holds /);
  });
});
