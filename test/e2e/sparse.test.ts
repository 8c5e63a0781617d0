/**
 * Issue 13, sparse files through the real service: tars GNU tar wrote with `-S` are uploaded
 * as contents, built, downloaded, and GNU tar extracting the image's layer gives back each
 * file with its size and bytes, under its own name. A malformed map fails the build with 422.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { run } from '../support/run.ts';
import { downloadImage, startService, submitBuild, uploadFile, waitForBuild, type Service } from '../support/service.ts';
import { END_OF_ARCHIVE, entry } from '../support/raw-tar.ts';

let service: Service;
let work: string;

const sh = async (script: string) => {
  const result = await run('bash', ['-ec', script]);
  expect(result.code, result.stderr).toBe(0);
  return result.stdout;
};

async function fileDigest(path: string): Promise<{ size: number; sha: string }> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return { size: (await stat(path)).size, sha: hash.digest('hex') };
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'baler-e2e-sparse-'));
  service = await startService();
}, 120_000);

afterAll(async () => {
  await service?.stop();
  await rm(work, { recursive: true, force: true });
});

it('builds contents tars with sparse files (GNU S and PAX 1.0) into layers that hold them as regular files', async () => {
  const src = join(work, 'src');
  await sh(`
    mkdir -p ${src}/data && cd ${src}/data
    truncate -s 64M disk.img
    head -c 65536 /dev/urandom | dd of=disk.img bs=4096 seek=100 conv=notrunc status=none
    printf 'tail' | dd of=disk.img bs=1 seek=$((64 * 1024 * 1024 - 4)) conv=notrunc status=none
    truncate -s 8M zeros
    tar --format=gnu -S -C ${src} -cf ${work}/gnu.tar data
    tar --format=posix -S --sparse-version=1.0 -C ${src} -cf ${work}/posix.tar data
  `);
  const want = { 'disk.img': await fileDigest(join(src, 'data/disk.img')), zeros: await fileDigest(join(src, 'data/zeros')) };
  expect((await stat(join(work, 'posix.tar'))).size).toBeLessThan(1024 ** 2);

  const gnu = await uploadFile(service, join(work, 'gnu.tar'));
  const posix = await uploadFile(service, join(work, 'posix.tar'));
  const id = await submitBuild(service, {
    name: 'e2e/sparse',
    compression: 'none',
    contents: [{ tar: gnu }, { tar: posix, to: '/posix' }],
  });
  const build = await waitForBuild(service, id, 300_000);
  expect(build.status, JSON.stringify(build.error)).toBe('succeeded');

  const image = join(work, 'image.tar');
  await downloadImage(service, id, image);
  const out = join(work, 'out');
  await sh(`mkdir -p ${out}/image ${out}/root && tar -C ${out}/image -xf ${image}`);
  const layers = (await sh(`cd ${out}/image && find . -name layer.tar`)).trim().split('\n');
  expect(layers).toHaveLength(1);
  // Regular files in the layer: GNU tar lists no sparse member ('S') and no GNUSparseFile name.
  const listing = await sh(`tar -tvf ${join(out, 'image', layers[0] as string)}`);
  expect(listing).not.toMatch(/GNUSparseFile|^S/m);
  await sh(`tar -C ${out}/root -xf ${join(out, 'image', layers[0] as string)}`);
  expect((await readdir(join(out, 'root'))).sort()).toEqual(['data', 'posix']);
  for (const dir of ['data', 'posix/data']) {
    for (const [name, digest] of Object.entries(want)) expect(await fileDigest(join(out, 'root', dir, name)), `${dir}/${name}`).toEqual(digest);
  }
}, 300_000);

it("fails a build whose contents tar has a sparse map past the file's end: 422, saying why", async () => {
  const tar = Buffer.concat([
    entry({ name: 'GNUSparseFile.1/f' }, Buffer.alloc(10), [
      ['GNU.sparse.major', '0'],
      ['GNU.sparse.minor', '1'],
      ['GNU.sparse.name', 'f'],
      ['GNU.sparse.realsize', '100'],
      ['GNU.sparse.map', '95,10'],
    ]),
    END_OF_ARCHIVE,
  ]);
  await writeFile(join(work, 'bad.tar'), tar);
  const build = await waitForBuild(service, await submitBuild(service, { name: 'e2e/sparse-bad', contents: [{ tar: await uploadFile(service, join(work, 'bad.tar')) }] }));
  expect(build.status).toBe('failed');
  expect(build.error).toMatchObject({ status: 422 });
  expect(build.error?.detail).toMatch(/sparse map: a segment ends past the file's size of 100 bytes/);
});
