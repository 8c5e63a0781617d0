/**
 * Archive bombs: small uploads that would unpack to far more are stopped while unpacking, gzip
 * (zlib) and xz, bzip2, zstd (Debian's tools, run by the worker) alike.
 */
import { readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { run } from '../support/run.ts';
import { startService, submitBuild, uploadFile, waitForBuild, type Service } from '../support/service.ts';

let service: Service;
const bomb = join(tmpdir(), `bomb-${process.pid}.gz`);
/** 1.1 GiB of zeros (over the budget's 1 GiB floor) with each of Debian's tools: 7 to 170 kB. */
const TOOL_BOMBS = { xz: 'xz -0 -T1', bzip2: 'bzip2 -1', zstd: 'zstd -1 -q' } as const;
const toolBomb = (kind: keyof typeof TOOL_BOMBS) => join(tmpdir(), `bomb-${process.pid}.${kind}`);

beforeAll(async () => {
  service = await startService();
  // 1.5 GiB of zeros in about 1.5 MB.
  await run('sh', ['-c', `head -c 1536M /dev/zero | gzip -9 > '${bomb}'`]);
  for (const [kind, command] of Object.entries(TOOL_BOMBS)) {
    await run('sh', ['-c', `head -c 1100M /dev/zero | ${command} > '${toolBomb(kind as keyof typeof TOOL_BOMBS)}'`]);
  }
}, 180_000);

afterAll(async () => {
  await service?.stop();
  await rm(bomb, { force: true });
  for (const kind of Object.keys(TOOL_BOMBS)) await rm(toolBomb(kind as keyof typeof TOOL_BOMBS), { force: true });
});

it.each([
  ['as contents', (digest: string) => ({ name: 'bomb/contents', contents: [{ tar: digest }] })],
  ['as a base image archive', (digest: string) => ({ name: 'bomb/base', fromImage: { blob: digest } })],
])(
  'a gzip bomb %s ends failed, and nothing half-written is left',
  async (_how, spec) => {
    const id = await submitBuild(service, spec(await uploadFile(service, bomb)));
    const build = await waitForBuild(service, id);
    expect(build.status).toBe('failed');
    expect(build.error?.detail).toMatch(/decompresses to more than \d+ bytes \(an archive bomb\?\)/);
    expect(await readdir(join(service.dataDir, 'store', 'ingest'))).toEqual([]);
  },
  120_000,
);

it.each(Object.keys(TOOL_BOMBS) as Array<keyof typeof TOOL_BOMBS>)(
  '%s: a bomb as contents ends 422 naming the decompression budget, and nothing half-written is left',
  async (kind) => {
    const id = await submitBuild(service, { name: `bomb/${kind}`, contents: [{ tar: await uploadFile(service, toolBomb(kind)) }] });
    const build = await waitForBuild(service, id);
    expect(build.status).toBe('failed');
    expect(build.error?.status).toBe(422);
    expect(build.error?.detail).toMatch(
      /^contents\[0\]: blob sha256:[0-9a-f]{64} decompresses to more than 1073741824 bytes \(an archive bomb\?\): the decompression budget is 200 × the compressed size, at least 1 GiB, at most 64 GiB$/,
    );
    expect(await readdir(join(service.dataDir, 'store', 'ingest'))).toEqual([]);
  },
  120_000,
);
