/** Our tar writer against GNU tar (the reader we did not write) and our own index. */
import { lstat, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { indexTar } from '../../src/image/tar-index.ts';
import { TarStreamWriter, type TarWriteHeader } from '../../src/image/tar-writer.ts';
import { run } from '../support/run.ts';

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'baler-writer-'));
});
afterAll(async () => rm(work, { recursive: true, force: true }));

// A real security.capability value (cap_net_bind_service=+ep): binary, with bytes >= 0x80.
const CAPABILITY = Buffer.from('0100000200040000000000000000000000000000', 'hex');

async function writeTar(entries: Array<[TarWriteHeader, Buffer?]>): Promise<Buffer> {
  const writer = new TarStreamWriter();
  const out = buffer(writer.stream);
  for (const [header, data] of entries) await writer.add(header, data);
  await writer.finish();
  return out;
}

const base = { uid: 0, gid: 0, mtime: 1234567890 };

it('keeps binary xattrs byte for byte, mode 0000, long and non-ASCII names', async () => {
  const long = `${'a'.repeat(80)}/${'b'.repeat(80)}/${'c'.repeat(120)}`;
  const tar = await writeTar([
    [{ ...base, name: 'bin/', type: 'directory', mode: 0o755, size: 0 }],
    [{ ...base, name: 'bin/ping', type: 'file', mode: 0o755, size: 2, xattrs: { 'security.capability': CAPABILITY.toString('latin1'), 'user.note': 'ünï' } }, Buffer.from('hi')],
    [{ ...base, name: 'shadow', type: 'file', mode: 0, size: 0 }],
    [{ ...base, name: long, type: 'file', mode: 0o644, size: 1, uid: 3_000_000 }, Buffer.from('x')],
    [{ ...base, name: 'grüße', type: 'symlink', mode: 0o777, size: 0, linkname: `ziel-${'z'.repeat(120)}` }],
  ]);
  const path = join(work, 'out.tar');
  await writeFile(path, tar);

  const listing = await run('tar', ['--numeric-owner', '-tvf', path]);
  expect(listing.code, listing.stderr).toBe(0);
  expect(listing.stdout).toContain('---------- 0/0');
  expect(listing.stdout).toContain(`3000000/0`);
  expect(listing.stdout).toContain(long);
  expect(listing.stdout).toContain(`grüße -> ziel-${'z'.repeat(120)}`);

  const dir = join(work, 'x');
  await run('mkdir', ['-p', dir]);
  const extract = await run('tar', ['--xattrs', '--xattrs-include=*', '--same-owner', '-C', dir, '-xpf', path]);
  expect(extract.code, extract.stderr).toBe(0);
  const cap = await run('getfattr', ['--only-values', '-n', 'security.capability', join(dir, 'bin/ping')]);
  expect(Buffer.from(cap.stdout, 'latin1')).toEqual(CAPABILITY);
  expect((await lstat(join(dir, 'shadow'))).mode & 0o7777).toBe(0);
  expect((await lstat(join(dir, long))).uid).toBe(3_000_000);

  const entries = [];
  for await (const e of indexTar(Readable.from([tar]))) entries.push(e);
  expect(Buffer.from(entries[1]?.xattrs['security.capability'] ?? '', 'latin1')).toEqual(CAPABILITY);
  expect(entries[1]?.xattrs['user.note']).toBe('ünï'); // latin1 in, latin1 out: the same bytes
  expect(entries.map((e) => e.name)).toEqual(['bin/', 'bin/ping', 'shadow', long, 'grüße']);
});

it('is deterministic', async () => {
  const entries: Array<[TarWriteHeader, Buffer?]> = [[{ ...base, name: 'é', type: 'file', mode: 0o600, size: 3, xattrs: { 'user.a': 'b' } }, Buffer.from('abc')]];
  expect(await writeTar(entries)).toEqual(await writeTar(entries));
});

it('refuses data that does not match the declared size', async () => {
  const writer = new TarStreamWriter();
  writer.stream.resume();
  await expect(writer.add({ ...base, name: 'f', type: 'file', mode: 0o644, size: 5 }, Buffer.from('abc'))).rejects.toThrow(/3 bytes for a size of 5/);
  await expect(writer.addStream({ ...base, name: 'g', type: 'file', mode: 0o644, size: 5 }, Readable.from([Buffer.from('abc')]))).rejects.toThrow(/3 bytes/);
});
