/**
 * `oci-archive` and the Docker-25 `docker-archive` form, checked with tools we did not write:
 * skopeo (inspect, copy), umoci (unpack), gzip/zstd (decompress layers back to their
 * diff_ids), GNU tar (list, extract). Bytes are compared across two stores built from the
 * same inputs, and across calls (the second served from the compressed-layer cache).
 */
import { readFile, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestOf, hexOf, type Digest } from '../../../src/digest.ts';
import { writeDockerArchiveOci } from '../../../src/image/sinks/docker-archive-oci.ts';
import { pieceFormatId } from '../../../src/image/gzip/deflate-block.ts';
import type { OutputCompression } from '../../../src/image/sinks/output-format.ts';
import { writeImage } from '../../../src/image/sinks/write-image.ts';
import { compressedLayer, FsCompressedLayerIndex, type CompressedBlob, type CompressedLayerIndex } from '../../../src/image/sinks/layer-compression.ts';
import { writeOciArchive } from '../../../src/image/sinks/oci-archive.ts';
import { run } from '../../support/run.ts';
import { listTar } from '../../support/tar-tools.ts';
import { CREATED_EPOCH, makeInputs, makeTestImage, saveOutput, type Inputs, type TestImage } from './fixture.ts';
import { extract } from './tree-listing.ts';

const REF = 'baler-test/sinks:1.0';
const COMPRESSIONS: OutputCompression[] = ['gzip', 'zstd', 'none'];

let inputs: Inputs;
let first: TestImage;
let second: TestImage;
const archives: Record<OutputCompression, string> = {} as Record<OutputCompression, string>;
const digests: Record<OutputCompression, Digest> = {} as Record<OutputCompression, Digest>;

beforeAll(async () => {
  inputs = await makeInputs();
  first = await makeTestImage(inputs, join(inputs.dir, 'store-1'));
  second = await makeTestImage(inputs, join(inputs.dir, 'store-2'));
  for (const compression of COMPRESSIONS) {
    archives[compression] = join(inputs.dir, `oci-${compression}.tar`);
    const out = await writeOciArchive(first.image, { refName: REF, compression, store: first.store });
    expect(out.mediaType).toBe('application/x-tar');
    digests[compression] = (await saveOutput(out, archives[compression])).digest;
  }
});

afterAll(async () => {
  if (inputs) await rm(inputs.dir, { recursive: true, force: true });
});

const json = async (dir: string, path: string) => JSON.parse(await readFile(join(dir, path), 'utf8'));

describe.each(COMPRESSIONS)('oci-archive, %s layers', (compression) => {
  it('is an OCI image layout: oci-layout, index.json with the ref name, OCI media types, the config bytes kept', async () => {
    const entries = await listTar(archives[compression]);
    expect(entries.map((e) => e.name).slice(0, 2)).toEqual(['blobs/', 'blobs/sha256/']);
    expect(entries.map((e) => e.name).slice(-2)).toEqual(['index.json', 'oci-layout']);
    for (const e of entries) expect([e.uid, e.gid, e.uname, e.gname, e.mtime]).toEqual([0, 0, '', '', CREATED_EPOCH]);

    const dir = await extract(archives[compression], inputs.dir);
    expect(await json(dir, 'oci-layout')).toEqual({ imageLayoutVersion: '1.0.0' });
    const index = await json(dir, 'index.json');
    expect(index.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    expect(index.manifests).toHaveLength(1);
    const [descriptor] = index.manifests;
    expect(descriptor.annotations).toEqual({ 'org.opencontainers.image.ref.name': '1.0', 'io.containerd.image.name': 'docker.io/baler-test/sinks:1.0' });
    expect(descriptor.platform).toEqual({ architecture: 'amd64', os: 'linux' });

    const manifestBytes = await readFile(join(dir, 'blobs/sha256', hexOf(descriptor.digest)));
    expect(digestOf(manifestBytes)).toBe(descriptor.digest);
    expect(manifestBytes.length).toBe(descriptor.size);
    const manifest = JSON.parse(manifestBytes.toString('utf8'));
    expect(manifest.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    expect(manifest.config).toEqual({ mediaType: 'application/vnd.oci.image.config.v1+json', digest: first.image.imageId, size: Buffer.byteLength(first.image.config) });
    expect(await readFile(join(dir, 'blobs/sha256', hexOf(first.image.imageId)), 'utf8')).toBe(first.image.config);

    // Every layer blob, decompressed by the real tool, is the layer its diff_id names.
    const mediaType = { gzip: 'application/vnd.oci.image.layer.v1.tar+gzip', zstd: 'application/vnd.oci.image.layer.v1.tar+zstd', none: 'application/vnd.oci.image.layer.v1.tar' }[compression];
    const diffIds = first.image.layers.map((l) => l.diffId);
    expect(manifest.layers).toHaveLength(diffIds.length);
    for (const [i, layer] of (manifest.layers as Array<{ mediaType: string; digest: Digest; size: number }>).entries()) {
      expect(layer.mediaType).toBe(mediaType);
      const path = join(dir, 'blobs/sha256', hexOf(layer.digest));
      expect((await stat(path)).size).toBe(layer.size);
      const decompress = compression === 'gzip' ? `gzip -dc '${path}'` : compression === 'zstd' ? `zstd -dc '${path}'` : `cat '${path}'`;
      const sum = await run('sh', ['-c', `${decompress} | sha256sum`]);
      expect(`sha256:${sum.stdout.split(' ')[0]}`).toBe(diffIds[i]);
    }
    // Nothing else in the layout.
    expect((await readdir(join(dir, 'blobs/sha256'))).sort()).toEqual(
      [...new Set([descriptor.digest, first.image.imageId, ...manifest.layers.map((l: { digest: Digest }) => l.digest)])].map((d) => hexOf(d as Digest)).sort(),
    );
    await rm(dir, { recursive: true, force: true });
  });

  it('passes skopeo inspect and skopeo copy', async () => {
    const source = `oci-archive:${archives[compression]}:1.0`;
    const inspect = await run('skopeo', ['inspect', '--config', source]);
    expect(inspect.code, inspect.stderr).toBe(0);
    expect(JSON.parse(inspect.stdout).rootfs.diff_ids).toEqual(first.image.layers.map((l) => l.diffId));
    const raw = await run('skopeo', ['inspect', '--raw', source]);
    expect(digestOf(raw.stdout)).toBe(
      (JSON.parse(await run('tar', ['-xOf', archives[compression], 'index.json']).then((r) => r.stdout)) as { manifests: Array<{ digest: string }> }).manifests[0]?.digest,
    );

    const copy = await run('skopeo', ['copy', source, `oci:${join(inputs.dir, `copy-${compression}`)}:1.0`]);
    expect(copy.code, copy.stderr).toBe(0);
    if (compression !== 'zstd') {
      // To docker-archive, skopeo decompresses every layer and checks it against its diff_id.
      // (containers/image 5.23 refuses zstd layers in Docker's format, whatever their content.)
      const toDocker = await run('skopeo', ['copy', source, `docker-archive:${join(inputs.dir, `docker-${compression}.tar`)}:x/y:1`]);
      expect(toDocker.code, toDocker.stderr).toBe(0);
    }
  });

  // umoci 0.4.7 cannot read zstd layers; those are checked by decompressing them above.
  if (compression !== 'zstd')
    it('unpacks with umoci, whiteouts applied', async () => {
      const layout = await extract(archives[compression], inputs.dir);
      const bundle = join(inputs.dir, `bundle-${compression}`);
      const unpack = await run('umoci', ['unpack', '--image', `${layout}:1.0`, bundle]);
      expect(unpack.code, unpack.stderr).toBe(0);
      const rootfs = join(bundle, 'rootfs');
      expect((await readdir(join(rootfs, 'data'))).sort()).toEqual(['keep']);
      expect((await readdir(join(rootfs, 'opq'))).sort()).toEqual(['new']);
      await expect(stat(join(rootfs, 'gonedir'))).rejects.toThrow();
      expect(await readFile(join(rootfs, 'app/hard'), 'utf8')).toBe('old data\n');
      expect(await readFile(join(rootfs, 'app/data.bin'), 'utf8')).toBe('new data\n');
      expect((await run('getcap', [join(rootfs, 'bin/capped')])).stdout).toContain('cap_net_raw=ep');
      await rm(layout, { recursive: true, force: true });
      await rm(bundle, { recursive: true, force: true });
    });

  it('is byte-identical for the same image: again from the cache, and built afresh in another store', async () => {
    const again = await saveOutput(await writeOciArchive(first.image, { refName: REF, compression, store: first.store }), join(inputs.dir, 'again.tar'));
    expect(again.digest).toBe(digests[compression]);
    expect(second.image.imageId).toBe(first.image.imageId);
    const other = await saveOutput(await writeOciArchive(second.image, { refName: REF, compression, store: second.store }), join(inputs.dir, 'other.tar'));
    expect(other.digest).toBe(digests[compression]);
  });
});

describe('compressedLayer', () => {
  class CountingIndex implements CompressedLayerIndex {
    sets = 0;
    constructor(private readonly inner: CompressedLayerIndex) {}
    get(method: string, diffId: Digest) {
      return this.inner.get(method, diffId);
    }
    set(method: string, diffId: Digest, blob: CompressedBlob) {
      this.sets++;
      return this.inner.set(method, diffId, blob);
    }
  }

  it('compresses each layer once per method, remembered in JSON files beside the store', async () => {
    const layer = first.image.layers[0];
    if (!layer) throw new Error('no layer');
    const index = new CountingIndex(new FsCompressedLayerIndex(join(first.store.root, 'index', 'compressed-layers')));
    const gz = await compressedLayer(first.store, layer, 'gzip', index);
    expect(index.sets).toBe(0); // the archives above already made it
    const file = join(first.store.root, 'index/compressed-layers', `gzip-${pieceFormatId(6)}`, `${hexOf(layer.diffId)}.json`);
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual({ diffId: layer.diffId, method: `gzip-${pieceFormatId(6)}`, digest: gz.digest, size: gz.size });
    expect(await first.store.stat(gz.digest)).toEqual({ digest: gz.digest, size: gz.size });
    expect(await compressedLayer(first.store, layer, 'none', index)).toEqual({ digest: layer.diffId, size: layer.size });

    // An entry naming a blob the store lost is redone, to the same bytes.
    await rm(join(first.store.root, 'blobs/sha256', hexOf(gz.digest)));
    expect(await compressedLayer(first.store, layer, 'gzip', index)).toEqual(gz);
    expect(index.sets).toBe(1);
  });
});

describe('docker-archive, Docker 25 form', () => {
  it.each(['none', 'gzip'] as const)('is the OCI layout plus manifest.json and repositories pointing into blobs/ (%s layers)', async (compression) => {
    const path = join(inputs.dir, `docker25-${compression}.tar`);
    const saved = await saveOutput(await writeDockerArchiveOci(first.image, { refName: REF, compression, store: first.store }), path);
    const names = (await listTar(path)).map((e) => e.name);
    expect(names.slice(-4)).toEqual(['index.json', 'manifest.json', 'oci-layout', 'repositories']);
    const dir = await extract(path, inputs.dir);
    const [item, ...more] = await json(dir, 'manifest.json');
    expect(more).toEqual([]);
    expect(item.RepoTags).toEqual([REF]);
    expect(item.Config).toBe(`blobs/sha256/${hexOf(first.image.imageId)}`);
    const manifest = JSON.parse(await readFile(join(dir, 'blobs/sha256', hexOf((await json(dir, 'index.json')).manifests[0].digest)), 'utf8'));
    expect(item.Layers).toEqual(manifest.layers.map((l: { digest: Digest }) => `blobs/sha256/${hexOf(l.digest)}`));
    if (compression === 'none') expect(item.Layers).toEqual(first.image.layers.map((l) => `blobs/sha256/${hexOf(l.diffId)}`));
    expect(await json(dir, 'repositories')).toEqual({ 'baler-test/sinks': { '1.0': (item.Layers.at(-1) as string).slice('blobs/sha256/'.length) } });
    // containers/image reads it both ways: as an OCI archive and through manifest.json.
    for (const transport of [`oci-archive:${path}:1.0`, `docker-archive:${path}`]) {
      const inspect = await run('skopeo', ['inspect', '--config', transport]);
      expect(inspect.code, `${transport}: ${inspect.stderr}`).toBe(0);
      expect(JSON.parse(inspect.stdout).rootfs.diff_ids).toEqual(first.image.layers.map((l) => l.diffId));
    }
    const other = await saveOutput(await writeDockerArchiveOci(second.image, { refName: REF, compression, store: second.store }), join(inputs.dir, 'other.tar'));
    expect(other.digest).toBe(saved.digest);
    await rm(dir, { recursive: true, force: true });
  });
});

describe('loadImage (a succeeded build as an Image, what the API hands the sinks)', () => {
  it('keeps the stored config bytes, layers and legacy metadata', async () => {
    const { built, store } = first;
    expect(digestOf(built.config)).toBe(built.imageId);
    expect(built.layers.map((l) => l.diffId)).toEqual(JSON.parse(built.config).rootfs.diff_ids);
    expect(built.legacyJson.map((json) => JSON.parse(json).id)).toEqual(built.layers.map((l) => l.v1Id));
    expect(built.legacyJson.map(digestOf)).toEqual(built.layers.map((l) => l.v1Json));
    const out = await saveOutput(await writeOciArchive(built, { refName: REF, compression: 'gzip', store }), join(inputs.dir, 'built.tar'));
    const inspect = await run('skopeo', ['inspect', '--config', `oci-archive:${join(inputs.dir, 'built.tar')}:1.0`]);
    expect(JSON.parse(inspect.stdout).rootfs.diff_ids).toHaveLength(2);
    expect(out.size).toBeGreaterThan(0);
  });
});

describe('writeImage (the formats the API offers)', () => {
  it('validates compression per format and names the file', async () => {
    const opts = { name: 'baler-test/sinks', tag: '1.0', store: first.store };
    await expect(writeImage('docker-archive-oci', first.image, { ...opts, compression: 'zstd' })).rejects.toThrow(/is not available/);
    await expect(writeImage('rootfs', first.image, { ...opts, compression: 'zstd' })).rejects.toThrow(/is not available/);
    const oci = await writeImage('oci-archive', first.image, opts);
    expect(oci.filename).toBe('baler-test_sinks-1.0.oci.tar');
    expect((await saveOutput(oci, join(inputs.dir, 'default.tar'))).digest).toBe(digests.gzip);
    const seed = await writeImage('docker-archive', first.image, { ...opts, compression: 'none' });
    expect([seed.filename, seed.mediaType]).toEqual(['baler-test_sinks-1.0.tar', 'application/x-tar']);
    const skopeoPath = join(inputs.dir, 'seed.tar');
    // Planned: its exact size is known before a byte is read (saveOutput checks it).
    expect(seed.size).toBeGreaterThan(0);
    await saveOutput(seed, skopeoPath);
    expect((await run('skopeo', ['inspect', `docker-archive:${skopeoPath}`])).code).toBe(0);
  });
});
