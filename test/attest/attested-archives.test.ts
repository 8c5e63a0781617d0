/**
 * A multi-platform build's `oci-archive` holds its images' SBOMs in BuildKit's attestation
 * layout (src/attest/attested-archives.ts, src/image/sinks/attestation-manifest.ts): checked on
 * real builds without a VM (text contents), attested by the real SBOM and provenance code,
 * read back with skopeo (which must still pick the images), and downloaded twice as the API
 * assembles them (byte-identical, the digest the result records, the same for a rebuild).
 */
import { createReadStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SPDX_PREDICATE_TYPE, archivePredicates } from '../../src/attest/archive-attestations.ts';
import { attestCachedResult, attestResult, type BuildFacts } from '../../src/attest/attest-build.ts';
import { describeAttestedArchives } from '../../src/attest/attested-archives.ts';
import type { Attested } from '../../src/attest/image-attestations.ts';
import { indexOutput } from '../../src/builds/build-archive.ts';
import type { BuildResult } from '../../src/builds/build-result.ts';
import { runPlatforms } from '../../src/builds/multi-platform-build.ts';
import { runBuild } from '../../src/builds/run-build.ts';
import { resolveSpec, type BuildSpec, type ResolvedSpec } from '../../src/builds/spec.ts';
import { DEFAULT_TENANT } from '../../src/builds/tenant.ts';
import { digestOf, hexOf, type Digest } from '../../src/digest.ts';
import { importArchive } from '../../src/image/sources/archive/import-archive.ts';
import { loadImage } from '../../src/image/stored-image.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';
import { run } from '../support/run.ts';
import { saveOutput } from '../image/sinks/fixture.ts';

const CREATED = '2024-01-02T03:04:05Z';
const attestDeps = (store: FsBlobStore) => ({ store, builderId: 'urn:baler:test', balerVersion: '0.0.0-test', worker: 'test-worker' });
const facts = (spec: ResolvedSpec, buildId = 'b1'): BuildFacts => ({ buildId, spec, startedOn: new Date().toISOString(), finishedOn: new Date().toISOString() });

let dir: string;
let store: FsBlobStore;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'baler-attested-archive-'));
  store = await FsBlobStore.create(join(dir, 'store'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const buildDeps = () => ({
  store,
  tenant: DEFAULT_TENANT,
  allowDevices: false,
  vm: { run: () => Promise.reject(new Error('no VM step in these builds')) },
  loadBuildImage: () => Promise.reject(new Error('no base')),
});
/** What the API serves for a multi-platform build's `oci-archive` (api/builds.ts), saved under `name`. */
async function download(result: BuildResult, spec: ResolvedSpec, name: string) {
  const platforms = result.platforms ?? [];
  const predicatesOf = (image: Attested) => (image.attestations ? archivePredicates(image.attestations, store) : undefined);
  const images = await Promise.all(platforms.map((p) => loadImage(store, p)));
  const out = await indexOutput(images, spec, result.archive.compression, store, await Promise.all(platforms.map(predicatesOf)));
  const path = join(dir, name);
  return { path, ...(await saveOutput(out, path)) };
}

const tarFile = async (archive: string, path: string) => (await run('tar', ['-xOf', archive, path])).stdout;
const blob = async (archive: string, digest: string) => JSON.parse(await tarFile(archive, `blobs/sha256/${hexOf(digest as Digest)}`));
const skopeo = async (args: string[]) => {
  const r = await run('skopeo', args);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout;
};

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { os: string; architecture: string; variant?: string };
  annotations?: Record<string, string>;
}

/** `os/arch[/variant]` of an index entry (arm64's config says `v8`). */
const platformOf = (d: Descriptor | undefined) => [d?.platform?.os, d?.platform?.architecture, d?.platform?.variant].filter(Boolean).join('/');

const spec = resolveSpec(
  {
    name: 'attested/app',
    tag: '1.0',
    platforms: ['linux/amd64', 'linux/arm64'],
    compression: 'gzip',
    created: CREATED,
    contents: [{ text: 'hello\n', to: '/etc/hello' }],
  } as BuildSpec,
  new Date(),
);
let built: BuildResult;
let result: BuildResult;
beforeAll(async () => {
  built = await runPlatforms(spec, buildDeps(), runBuild);
  result = await describeAttestedArchives(await attestResult(built, facts(spec), attestDeps(store)), spec, store);
});

describe("a multi-platform build's oci-archive", () => {
  it('lists each image attestation manifest after the images, as BuildKit does; two downloads are the bytes the result records', async () => {
    expect(result.archive.digest).not.toBe(built.archive.digest);
    const [a, b] = [await download(result, spec, 'a.tar'), await download(result, spec, 'b.tar')];
    expect(b.digest).toBe(a.digest);
    expect({ digest: a.digest, size: a.size }).toEqual({ digest: result.archive.digest, size: result.archive.size });

    const top = JSON.parse(await tarFile(a.path, 'index.json')) as { manifests: Descriptor[] };
    expect(top.manifests).toHaveLength(1);
    const index = (await blob(a.path, top.manifests[0]?.digest as string)) as { manifests: Descriptor[] };
    const platforms = result.platforms ?? [];
    expect(index.manifests.map((m) => m.platform?.architecture)).toEqual(['amd64', 'arm64', 'unknown', 'unknown']);
    // The images are the ones the build recorded (and a push tags), unchanged.
    expect(index.manifests.slice(0, 2).map((m) => m.digest)).toEqual(platforms.map((p) => p.manifest.digest));

    for (const [i, p] of platforms.entries()) {
      const entry = index.manifests[2 + i];
      expect(entry).toMatchObject({
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        platform: { architecture: 'unknown', os: 'unknown' },
        annotations: { 'vnd.docker.reference.type': 'attestation-manifest', 'vnd.docker.reference.digest': p.manifest.digest },
      });
      const manifest = await blob(a.path, entry?.digest as string);
      expect(manifest.config.mediaType).toBe('application/vnd.oci.image.config.v1+json');
      expect(await blob(a.path, manifest.config.digest)).toMatchObject({ architecture: 'unknown', os: 'unknown', rootfs: { type: 'layers' } });
      const layers = manifest.layers as Descriptor[];
      expect(layers.map((l) => [l.mediaType, l.annotations?.['in-toto.io/predicate-type']])).toEqual([['application/vnd.in-toto+json', SPDX_PREDICATE_TYPE]]);
      const text = await tarFile(a.path, `blobs/sha256/${hexOf(layers[0]?.digest as Digest)}`);
      expect(digestOf(text)).toBe(layers[0]?.digest);
      const statement = JSON.parse(text);
      expect(statement).toMatchObject({ _type: 'https://in-toto.io/Statement/v1', predicateType: SPDX_PREDICATE_TYPE });
      // About the image manifest beside it, named as BuildKit names it.
      expect(statement.subject).toEqual([
        { name: `pkg:docker/docker.io/attested/app@1.0?platform=${encodeURIComponent(platformOf(index.manifests[i]))}`, digest: { sha256: hexOf(p.manifest.digest) } },
      ]);
      // The predicate is the SBOM /sbom serves, byte for byte as JSON.
      const served = (await archivePredicates(p.attestations as NonNullable<Attested['attestations']>, store))[0]?.predicate;
      expect(statement.predicate).toEqual(served);
      expect(statement.predicate.spdxVersion).toBe('SPDX-2.3');
    }
  });

  it('still reads with skopeo: inspect --raw gives the index, copy picks each platform image', async () => {
    const { path } = await download(result, spec, 'tools.tar');
    const top = JSON.parse(await tarFile(path, 'index.json')) as { manifests: Descriptor[] };
    expect(digestOf(await skopeo(['inspect', '--raw', `oci-archive:${path}`]))).toBe(top.manifests[0]?.digest);
    for (const [arch, p] of [
      ['amd64', result.platforms?.[0]],
      ['arm64', result.platforms?.[1]],
    ] as const) {
      const copied = join(dir, `dir-${arch}`);
      await skopeo(['--override-arch', arch, 'copy', `oci-archive:${path}`, `dir:${copied}`]);
      expect(digestOf(await readFile(join(copied, 'manifest.json')))).toBe(p?.manifest.digest);
    }
  });

  it('is a base baler imports again, each platform image by its architecture', async () => {
    const { path } = await download(result, spec, 'as-base.tar');
    const uploaded = (await store.put(createReadStream(path))).digest;
    for (const [architecture, p] of [
      ['amd64', result.platforms?.[0]],
      ['arm64', result.platforms?.[1]],
    ] as const) {
      expect((await importArchive(store, uploaded, { architecture })).imageId).toBe(p?.imageId);
    }
  });

  it('is the same archive for a rebuild (the provenance stays out) and for a build-cache hit', async () => {
    const again = await runPlatforms(spec, buildDeps(), runBuild);
    const rebuilt = await describeAttestedArchives(await attestResult(again, facts(spec, 'b2'), attestDeps(store)), spec, store);
    expect(rebuilt.platforms?.[0]?.attestations?.provenance).not.toBe(result.platforms?.[0]?.attestations?.provenance);
    expect(rebuilt.archive).toEqual(result.archive);
    const hit = await attestCachedResult(result, facts(spec, 'b3'), 'b1', attestDeps(store));
    expect((await download(hit, spec, 'hit.tar')).digest).toBe(result.archive.digest);
  });

  it('keeps single-image archives as they were', async () => {
    expect(result.platforms?.map((p) => p.archive)).toEqual(built.platforms?.map((p) => p.archive));
    const one = resolveSpec({ ...spec, platforms: undefined, format: 'oci-archive' } as BuildSpec, new Date());
    const single = await runBuild(one, buildDeps());
    expect(await describeAttestedArchives(await attestResult(single, facts(one), attestDeps(store)), one, store)).toMatchObject({ archive: single.archive });
  });
});
