/**
 * The store's disk fills up (a small tmpfs as DATA_DIR): uploads get 507, builds fail with
 * `store full`, no half-written blob is ever visible, and the service works again once there
 * is room.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { run } from '../support/run.ts';
import { startService, submitBuild, uploadFile, waitForBuild, type Service } from '../support/service.ts';

let dir: string;
let storeDir: string;
let service: Service;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'baler-full-'));
  storeDir = join(dir, 'store');
  await mkdir(storeDir);
  const mounted = await run('mount', ['-t', 'tmpfs', '-o', 'size=48m', 'tmpfs', storeDir]);
  expect(mounted.code, mounted.stderr).toBe(0);
  service = await startService({ DATA_DIR: storeDir });
}, 60_000);

afterAll(async () => {
  await service?.stop();
  await run('umount', [storeDir]);
  await rm(dir, { recursive: true, force: true });
});

/** Every visible blob is whole: its content hashes to its name. */
async function visibleBlobsAreWhole(): Promise<number> {
  const blobs = join(storeDir, 'blobs', 'sha256');
  const names = await readdir(blobs);
  for (const name of names)
    expect(
      createHash('sha256')
        .update(await readFile(join(blobs, name)))
        .digest('hex'),
    ).toBe(name);
  expect(await readdir(join(storeDir, 'ingest'))).toEqual([]);
  return names.length;
}

it('fails with store full, keeps nothing half-written, and recovers when space returns', async () => {
  const big = join(dir, 'big.bin');
  await writeFile(big, randomBytes(20 * 1024 * 1024)); // incompressible: the layer and archive are as big
  const digest = await uploadFile(service, big);

  // The layer (20 MB) fits, the archive (another 20 MB) does not.
  const id = await submitBuild(service, { name: 'full/one', compression: 'gzip', contents: [{ file: digest, to: '/big' }] });
  const build = await waitForBuild(service, id);
  expect(build.status).toBe('failed');
  expect(build.error).toMatchObject({ status: 507 });
  expect(build.error?.detail).toMatch(/store full/);
  await visibleBlobsAreWhole();

  const second = join(dir, 'second.bin');
  await writeFile(second, randomBytes(30 * 1024 * 1024));
  const upload = await fetch(`${service.url}/v1/blobs`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: await readFile(second) }).catch((e: Error) => e);
  if (upload instanceof Response) {
    expect(upload.status).toBe(507);
    expect(((await upload.json()) as { detail: string }).detail).toMatch(/store full/);
  }
  await visibleBlobsAreWhole();

  // Space returns: the same build now succeeds.
  expect((await run('mount', ['-o', 'remount,size=256m', storeDir])).code).toBe(0);
  const again = await waitForBuild(service, await submitBuild(service, { name: 'full/one', compression: 'gzip', contents: [{ file: digest, to: '/big' }] }));
  expect(again.status, JSON.stringify(again.error)).toBe('succeeded');
  expect(await visibleBlobsAreWhole()).toBeGreaterThan(2);
  expect((await fetch(`${service.url}/readyz`)).status).toBe(200);
}, 120_000);
