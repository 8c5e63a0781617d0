/** The build cache's hits (src/builds/build-cache.ts): only results whose blobs are all stored, and attested. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findCachedBuild } from '../../src/builds/build-cache.ts';
import type { BuildResult } from '../../src/builds/build-result.ts';
import { MemoryResultCache } from '../../src/builds/result-cache.ts';
import type { Digest } from '../../src/digest.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';

let dir: string;
let store: FsBlobStore;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'baler-build-cache-'));
  store = await FsBlobStore.create(join(dir, 'store'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const put = async (text: string): Promise<Digest> => (await store.put(Readable.from([Buffer.from(text)]))).digest;

describe('findCachedBuild', () => {
  it('answers with an attested result (or one whose attestation failed), not one from before builds were attested', async () => {
    const [config, layer, archive, sbom, cdx, provenance] = await Promise.all(['config', 'layer', 'archive', 'sbom', 'cdx', 'provenance'].map(put));
    const plain: BuildResult = {
      imageId: config as Digest,
      diffIds: [layer as Digest],
      layers: [],
      archive: { digest: archive as Digest, size: 7, mediaType: 'application/x-tar', format: 'docker-archive', compression: 'none', filename: 'x.tar' },
    };
    const cache = new MemoryResultCache();
    await cache.set('build', 'old', { buildId: 'b0', result: plain });
    await cache.set('build', 'attested', { buildId: 'b1', result: { ...plain, attestations: { sbomSpdx: sbom, sbomCycloneDx: cdx, provenance } } });
    await cache.set('build', 'failed', { buildId: 'b2', result: { ...plain, attestationError: 'attestations could not be made: over a budget' } });
    await cache.set('build', 'lost', { buildId: 'b3', result: { ...plain, attestations: { sbomSpdx: sbom, sbomCycloneDx: cdx, provenance: `sha256:${'0'.repeat(64)}` } } });
    expect(await findCachedBuild(cache, store, 'old')).toBeNull();
    expect((await findCachedBuild(cache, store, 'attested'))?.blobs.map((b) => b.digest)).toEqual(expect.arrayContaining([sbom, cdx, provenance]));
    expect((await findCachedBuild(cache, store, 'failed'))?.buildId).toBe('b2');
    // Garbage collection took one of its attestations: built again.
    expect(await findCachedBuild(cache, store, 'lost')).toBeNull();
  });
});
