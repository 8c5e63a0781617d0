/** Archive bombs: small uploads that would unpack to far more are stopped while unpacking. */
import { readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { run } from '../support/run.ts';
import { startService, submitBuild, uploadFile, waitForBuild, type Service } from '../support/service.ts';

let service: Service;
const bomb = join(tmpdir(), `bomb-${process.pid}.gz`);

beforeAll(async () => {
  service = await startService();
  // 1.5 GiB of zeros in about 1.5 MB.
  await run('sh', ['-c', `head -c 1536M /dev/zero | gzip -9 > '${bomb}'`]);
}, 120_000);

afterAll(async () => {
  await service?.stop();
  await rm(bomb, { force: true });
});

it.each([
  ['as contents', (digest: string) => ({ name: 'bomb/contents', contents: [{ tar: digest }] })],
  ['as a base image archive', (digest: string) => ({ name: 'bomb/base', fromImage: { blob: digest } })],
])('a gzip bomb %s ends failed, and nothing half-written is left', async (_how, spec) => {
  const id = await submitBuild(service, spec(await uploadFile(service, bomb)));
  const build = await waitForBuild(service, id);
  expect(build.status).toBe('failed');
  expect(build.error?.detail).toMatch(/decompresses to more than \d+ bytes \(an archive bomb\?\)/);
  expect(await readdir(join(service.dataDir, 'store', 'ingest'))).toEqual([]);
}, 120_000);
