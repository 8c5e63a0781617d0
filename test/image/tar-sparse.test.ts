/**
 * Issue 13, sparse files: tars GNU tar and bsdtar write with `-S`, in every sparse form, are
 * read as the files they stand for and written into layers as regular files; GNU tar extracting
 * the layer gives back each file's bytes and size.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Digest } from '../../src/digest.ts';
import { writeLayerTar } from '../../src/image/layer-writer.ts';
import { overlayLowerTree } from '../../src/image/overlay-form.ts';
import { flattenLayers } from '../../src/image/sinks/rootfs.ts';
import { plannedTar } from '../../src/image/sinks/tar-plan.ts';
import { ArchiveReader } from '../../src/image/sources/archive/archive-reader.ts';
import { resolveContents } from '../../src/image/sources/spec-contents.ts';
import { indexTar, type IndexedTarEntry } from '../../src/image/tar-index.ts';
import { tarsumOfStoredTar } from '../../src/image/tarsum-of-tar.ts';
import { BudgetExceededError } from '../../src/budget.ts';
import { BuildUsage } from '../../src/image/build-usage.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';
import { END_OF_ARCHIVE, entry } from '../support/raw-tar.ts';
import { rejection } from '../support/rejection.ts';
import { run } from '../support/run.ts';
import { listTar } from '../support/tar-tools.ts';

let work: string;
let src: string;
let store: FsBlobStore;
/** Each file of the source tree: size and sha256, as GNU tar extracting a layer must give them back. */
const expected = new Map<string, { size: number; sha: string }>();

const sh = async (script: string) => {
  const result = await run('sh', ['-ec', script]);
  expect(result.code, result.stderr).toBe(0);
};

async function fileDigest(path: string): Promise<{ size: number; sha: string }> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return { size: (await stat(path)).size, sha: hash.digest('hex') };
}

async function save(stream: Readable, name: string): Promise<string> {
  const path = join(work, name);
  await pipeline(stream, createWriteStream(path));
  return path;
}

/** Extracts with GNU tar and checks every source file came back with its size and bytes. */
async function expectSameFiles(tarPath: string): Promise<void> {
  const dir = await mkdtemp(join(work, 'x-'));
  const result = await run('tar', ['-C', dir, '-xf', tarPath]);
  expect(result.code, result.stderr).toBe(0);
  expect((await readdir(dir)).sort()).toEqual([...expected.keys()].sort());
  for (const [name, want] of expected) expect(await fileDigest(join(dir, name)), name).toEqual(want);
  await rm(dir, { recursive: true, force: true });
}

async function indexed(digest: Digest): Promise<IndexedTarEntry[]> {
  const out: IndexedTarEntry[] = [];
  for await (const entry of indexTar(await store.open(digest))) out.push(entry);
  return out;
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'baler-sparse-'));
  src = join(work, 'src');
  store = await FsBlobStore.create(join(work, 'store'));
  // Holes at the start, between and at the end; data at the start and at the end; a file that
  // is all hole; one with 60 segments (past GNU's 4 header pairs and a 21-pair extension block).
  await sh(`
    mkdir -p ${src} && cd ${src}
    truncate -s 5M middle && printf 'one' | dd of=middle bs=1 seek=100000 conv=notrunc status=none
    head -c 5000 /dev/urandom | dd of=middle bs=1 seek=2000000 conv=notrunc status=none
    truncate -s 3M ends && printf 'start' | dd of=ends conv=notrunc status=none && printf 'end' | dd of=ends bs=1 seek=3145725 conv=notrunc status=none
    truncate -s 1M hole
    truncate -s 4M many && for i in $(seq 0 59); do printf "x$i" | dd of=many bs=1 seek=$((i * 65536 + 7)) conv=notrunc status=none; done
    printf 'plain file\\n' > plain
  `);
  for (const name of await readdir(src)) expected.set(name, await fileDigest(join(src, name)));
});

afterAll(async () => rm(work, { recursive: true, force: true }));

const FORMS: Array<[string, string, string[]]> = [
  ['GNU tar --format=gnu -S', 'tar', ['--format=gnu', '-S']],
  ['GNU tar --format=oldgnu -S', 'tar', ['--format=oldgnu', '-S']],
  ['GNU tar --format=posix -S --sparse-version=0.0', 'tar', ['--format=posix', '-S', '--sparse-version=0.0']],
  ['GNU tar --format=posix -S --sparse-version=0.1', 'tar', ['--format=posix', '-S', '--sparse-version=0.1']],
  ['GNU tar --format=posix -S --sparse-version=1.0', 'tar', ['--format=posix', '-S', '--sparse-version=1.0']],
  ['bsdtar (pax, its default for sparse files)', 'bsdtar', []],
  ['bsdtar --format=pax', 'bsdtar', ['--format=pax']],
];

describe.each(FORMS)('%s', (_, tool, args) => {
  let digest: Digest;
  let tarSize: number;

  beforeAll(async () => {
    const path = join(work, `${tool}${args.join('')}.tar`);
    const made = await run(tool, [...args, '-C', src, '-cf', path, ...[...expected.keys()].sort()]);
    expect(made.code, made.stderr).toBe(0);
    const put = await store.put(createReadStream(path));
    digest = put.digest;
    tarSize = put.size;
  });

  it('is stored sparse, and indexed with real names, real sizes and maps', async () => {
    // The tool did write it sparse: the tar is far smaller than the files.
    expect(tarSize).toBeLessThan(1024 ** 2);
    const entries = await indexed(digest);
    expect(entries.map((e) => e.name.replace(/^\.\//, '')).sort()).toEqual([...expected.keys()].sort());
    for (const entry of entries) expect(entry.size, entry.name).toBe(expected.get(entry.name.replace(/^\.\//, ''))?.size);
    const many = entries.find((e) => e.name.endsWith('many'));
    expect(many?.sparse?.length).toBeGreaterThanOrEqual(2 * 30);
    expect(entries.find((e) => e.name.endsWith('hole'))?.sparse?.length ?? 0).toBe(0);
  });

  it('becomes a layer of regular files that GNU tar extracts to the same bytes', async () => {
    const tree = await resolveContents([{ tar: digest }], store, { uid: 0, gid: 0, allowDevices: false });
    const layer = writeLayerTar(tree.sortedEntries(), store, 0);
    const path = await save(layer.stream, `layer-${digest.slice(7, 19)}.tar`);
    expect(await layer.tarsum).toMatch(/^tarsum\.v1\+sha256:/);
    const listed = await listTar(path);
    expect(new Set(listed.map((e) => e.type))).toEqual(new Set(['file']));
    expect(listed.find((e) => e.name === 'many')?.size).toBe(expected.get('many')?.size);
    await expectSameFiles(path);
  });

  it('as a layer itself: flattens to a rootfs, is summed and read as overlay lower dir with its holes as zeros', async () => {
    const rootfs = plannedTar(await flattenLayers([{ diffId: digest }], store), store);
    expect(rootfs.size).toBeGreaterThan(13 * 1024 ** 2);
    await expectSameFiles(await save(rootfs.stream, `rootfs-${digest.slice(7, 19)}.tar`));
    expect(await tarsumOfStoredTar(store, digest)).toMatch(/^tarsum\.v1\+sha256:/);
    const lower = await overlayLowerTree([digest], store);
    const written = await save(writeLayerTar(lower.sortedEntries(), store).stream, `lower-${digest.slice(7, 19)}.tar`);
    const dir = await mkdtemp(join(work, 'lower-'));
    expect((await run('tar', ['-C', dir, '-xf', written])).code).toBe(0);
    expect(await fileDigest(join(dir, '0', 'middle'))).toEqual(expected.get('middle'));
    expect(await readFile(join(dir, '0', 'plain'), 'utf8')).toBe('plain file\n');
  });
});

it("counts a sparse file by its real size against the build's layer bytes: 1 PiB of holes in a 3 KiB tar", async () => {
  const tar = Buffer.concat([
    entry({ name: 'GNUSparseFile.1/huge' }, Buffer.from('data'), [
      ['GNU.sparse.major', '0'],
      ['GNU.sparse.minor', '1'],
      ['GNU.sparse.name', 'huge'],
      ['GNU.sparse.realsize', String(1024 ** 5)],
      ['GNU.sparse.map', `${1024 ** 5 - 4},4`],
    ]),
    END_OF_ARCHIVE,
  ]);
  const put = await store.put(Readable.from([tar]));
  const usage = new BuildUsage();
  const tree = await resolveContents([{ tar: put.digest }], store, { uid: 0, gid: 0, allowDevices: false, usage });
  expect(tree.layerBytes).toBe(1024 ** 5);
  const err = await rejection((async () => usage.addLayerBytes(tree.layerBytes, 'contents'))());
  expect(err).toBeInstanceOf(BudgetExceededError);
  expect(err).toMatchObject({ setting: 'BALER_MAX_BUILD_LAYER_BYTES' });
});

it('reads a sparse member of an image archive (a saved image re-tarred with tar -S) as its file', async () => {
  const path = join(work, 'archive.tar');
  const made = await run('tar', ['--format=posix', '-S', '-C', src, '-cf', path, 'middle']);
  expect(made.code, made.stderr).toBe(0);
  const put = await store.put(createReadStream(path));
  const reader = await ArchiveReader.open(store, put.digest);
  const member = reader.file('middle', 'test');
  expect(member.size).toBe(expected.get('middle')?.size);
  expect(await reader.head(member, 8)).toEqual(Buffer.alloc(8));
  const hash = createHash('sha256');
  for await (const chunk of await reader.openData(member)) hash.update(chunk as Buffer);
  expect(hash.digest('hex')).toBe(expected.get('middle')?.sha);
});
