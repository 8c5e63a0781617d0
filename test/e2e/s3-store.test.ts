/**
 * The service on the S3 store (BALER_STORE=s3) against a real S3 server, Ceph RGW on
 * loopback: upload, build, download, the image checked by skopeo, and the blobs really in
 * the bucket (nothing on the local disk).
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { paginateListObjectsV2 } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { busyboxTar, sha256File } from '../support/images.ts';
import { startRgw, type Rgw } from '../support/rgw.ts';
import { run } from '../support/run.ts';
import { downloadImage, startService, submitBuild, uploadFile, waitForBuild, type Service } from '../support/service.ts';

const BUCKET = 'baler-e2e';
let rgw: Rgw;
let service: Service;
let work: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'baler-e2e-s3-'));
  rgw = await startRgw();
  service = await startService({
    BALER_STORE: 's3',
    BALER_S3_ENDPOINT: rgw.endpoint,
    BALER_S3_BUCKET: BUCKET,
    AWS_ACCESS_KEY_ID: rgw.accessKeyId,
    AWS_SECRET_ACCESS_KEY: rgw.secretAccessKey,
    // No step here runs in a VM: no warm VM to boot.
    BALER_VM_POOL: '0',
  });
}, 180_000);

afterAll(async () => {
  await service?.stop();
  await rgw?.stop();
  await rm(work, { recursive: true, force: true });
});

async function bucketKeys(): Promise<string[]> {
  const s3 = rgw.client();
  const keys: string[] = [];
  for await (const page of paginateListObjectsV2({ client: s3 }, { Bucket: BUCKET })) keys.push(...(page.Contents ?? []).map((o) => o.Key ?? ''));
  s3.destroy();
  return keys;
}

it('uploads, builds and downloads an image whose blobs are all in the bucket', async () => {
  const tar = await busyboxTar();
  const busybox = await uploadFile(service, tar);
  expect(busybox).toBe(await sha256File(tar));

  // Read back by range through the API: a ranged GetObject.
  const ranged = await fetch(`${service.url}/v1/blobs/${busybox}`, { headers: { range: 'bytes=100-1123' } });
  expect(ranged.status).toBe(206);
  expect(Buffer.from(await ranged.arrayBuffer())).toEqual((await readFile(tar)).subarray(100, 1124));

  const id = await submitBuild(service, {
    name: 'baler-e2e/s3',
    format: 'oci-archive',
    compression: 'gzip',
    contents: [{ tar: busybox }, { text: 'stored in RGW\n', to: '/etc/where' }],
    config: { Cmd: ['/bin/cat', '/etc/where'], Env: ['PATH=/bin'] },
  });
  const build = await waitForBuild(service, id);
  expect(build.status, JSON.stringify(build.error)).toBe('succeeded');

  const archive = join(work, 'image.tar');
  const res = await downloadImage(service, id, archive);
  expect(res.headers.get('etag')).toBe(`"${build.result?.archive.digest}"`);
  expect(await sha256File(archive)).toBe(build.result?.archive.digest);
  // Twice: the second assembles from the compressed pieces remembered in Redis.
  const again = join(work, 'again.tar');
  await downloadImage(service, id, again);
  expect(await sha256File(again)).toBe(build.result?.archive.digest);

  // skopeo re-hashes every layer against the config's diff_ids while copying.
  const copy = await run('skopeo', ['copy', `oci-archive:${archive}`, `oci:${join(work, 'oci')}:s3`]);
  expect(copy.code, copy.stderr).toBe(0);
  const inspect = await run('skopeo', ['inspect', '--config', `oci-archive:${archive}`]);
  expect(inspect.code, inspect.stderr).toBe(0);
  const config = JSON.parse(inspect.stdout) as { rootfs: { diff_ids: string[] }; config: { Cmd: string[] } };
  expect(config.rootfs.diff_ids).toEqual(build.result?.diffIds);
  expect(config.config.Cmd).toEqual(['/bin/cat', '/etc/where']);

  // Everything the image is made of is an object in the bucket; no ingest leftovers; no
  // blobs on the local disk.
  const keys = await bucketKeys();
  const blobKey = (digest: string) => `blobs/sha256/${digest.slice('sha256:'.length)}`;
  for (const digest of [busybox, build.result?.imageId, ...(build.result?.diffIds ?? []), ...(build.result?.archive.parts ?? [])]) {
    expect(keys).toContain(blobKey(digest as string));
  }
  expect(keys.filter((k) => !k.startsWith('blobs/sha256/'))).toEqual([]);
  expect(existsSync(join(service.dataDir, 'store', 'blobs'))).toBe(false);
}, 300_000);
