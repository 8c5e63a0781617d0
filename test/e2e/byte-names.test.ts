/**
 * Issue 13, names as bytes, through the real service: a tree whose names and link targets are
 * not UTF-8 (`caf\xe9/men\xfa`, `x\xff` beside `x\xfe`, a hard link and symlinks to such names,
 * a path and a target longer than ustar holds) is archived by GNU tar and by Python's tarfile
 * (PAX and GNU long-name forms), built as contents, downloaded, and read back by GNU tar and
 * Python: the same bytes, every entry, in byte order, and the same archive from every writer.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baseImageTar } from '../support/base-image.ts';
import { bytes, gnuTarNames, listByteTree, makeByteNameTree, runForBytes, showBytes, type ByteTreeEntry } from '../support/byte-tree.ts';
import { run } from '../support/run.ts';
import { startService, submitBuild, uploadFile, waitForBuild, type BuildView, type Service } from '../support/service.ts';

let service: Service;
let work: string;
let source: string;
let expected: ByteTreeEntry[];

/** Python's tarfile archiving `src` as `.`: str names decoded with surrogateescape (its file system encoding). */
const PYTHON_TAR = ['import sys, tarfile', 'src, out, form = sys.argv[1:4]', 'with tarfile.open(out, "w", format=getattr(tarfile, form)) as t:', '    t.add(src, arcname=".")'].join('\n');

const WRITERS: Record<string, (out: string) => Promise<void>> = {
  'GNU tar, posix': async (out) => tool('tar', ['--format=posix', '-C', source, '-cf', out, '.']),
  'GNU tar, gnu': async (out) => tool('tar', ['--format=gnu', '-C', source, '-cf', out, '.']),
  'Python tarfile, PAX (hdrcharset=BINARY)': async (out) => tool('python3', ['-c', PYTHON_TAR, source, out, 'PAX_FORMAT']),
  'Python tarfile, GNU': async (out) => tool('python3', ['-c', PYTHON_TAR, source, out, 'GNU_FORMAT']),
};

async function tool(cmd: string, args: string[]): Promise<void> {
  const result = await run(cmd, args);
  expect(result.code, result.stderr).toBe(0);
}

async function download(id: string, query: string, name: string): Promise<string> {
  const res = await fetch(`${service.url}/v1/builds/${id}/image${query}`);
  expect(res.status).toBe(200);
  const path = join(work, name);
  await writeFile(path, Buffer.from(await res.arrayBuffer()));
  return path;
}

async function build(spec: Record<string, unknown>, opts: { noCache?: boolean } = {}): Promise<BuildView> {
  return waitForBuild(service, await submitBuild(service, { name: 'names/bytes', compression: 'none', ...spec }, opts));
}

/** What GNU tar extracts from `tarPath`, listed as bytes. */
async function extracted(tarPath: string): Promise<ByteTreeEntry[]> {
  const dir = await mkdtemp(join(work, 'x-'));
  const result = await runForBytes('tar', ['--same-owner', '--numeric-owner', '-C', dir, '-xf', tarPath]);
  expect(result.code, result.stderr).toBe(0);
  return listByteTree(dir);
}

/** The names of a tree as a tar lists them: directories with a trailing `/`. */
function tarNames(tree: ByteTreeEntry[]): string[] {
  return tree.map((e) => (e.type === 'dir' ? `${e.path}/` : e.path));
}

/** The one layer of a downloaded docker-archive, unpacked beside it. */
async function layerOf(archive: string): Promise<string> {
  const dir = await mkdtemp(join(work, 'archive-'));
  await tool('tar', ['-C', dir, '-xf', archive]);
  const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as Array<{ Layers: string[] }>;
  const layers = manifest[0]?.Layers ?? [];
  expect(layers).toHaveLength(1);
  return join(dir, layers[0] as string);
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'baler-byte-names-'));
  source = join(work, 'src');
  await mkdir(source);
  await makeByteNameTree(source);
  expected = await listByteTree(source);
  service = await startService();
}, 120_000);

afterAll(async () => {
  await service?.stop();
  await rm(work, { recursive: true, force: true });
});

describe('names and link targets that are not UTF-8', () => {
  const digests = new Map<string, string>();

  for (const [writer, write] of Object.entries(WRITERS)) {
    it(`${writer}: built as contents, every name and target comes out as the same bytes`, async () => {
      const input = join(work, `${writer.replace(/\W+/g, '-')}.tar`);
      await write(input);
      const blob = await uploadFile(service, input);
      const built = await build({ contents: [{ tar: blob }] });
      expect(built.status, JSON.stringify(built.error)).toBe('succeeded');
      digests.set(writer, built.result?.archive.digest as string);

      // The layer: byte order, every name as the writer's bytes, and GNU tar extracts the tree.
      const layer = await layerOf(await download(built.id, '', `${built.id}.tar`));
      expect(await gnuTarNames(layer)).toEqual(tarNames(expected));
      expect(await extracted(layer)).toEqual(expected);
      // Python reads it too (it honours hdrcharset=BINARY): os.fsencode gives the bytes back.
      const python = await runForBytes('python3', [
        '-c',
        'import os, sys, tarfile\nfor m in tarfile.open(sys.argv[1]): sys.stdout.buffer.write(os.fsencode(m.name) + b"\\0" + os.fsencode(m.linkname) + b"\\n")',
        layer,
      ]);
      expect(python.code, python.stderr).toBe(0);
      const pythonNames = python.stdout
        .toString('latin1')
        .split('\n')
        .filter(Boolean)
        .map((line) => showBytes(Buffer.from(line.split('\0')[0] as string, 'latin1')));
      expect(pythonNames).toEqual(tarNames(expected).map((name) => name.replace(/\/$/, '')));
      expect(python.stdout.includes(bytes(`sym\\xe9\0caf\\xe9/men\\xfa\n`))).toBe(true);
      const layerBytes = await readFile(layer);
      expect(layerBytes.includes('hdrcharset=BINARY')).toBe(true);

      // The flattened filesystem (the rootfs sink reads the layer back and writes it again).
      const rootfs = await download(built.id, '?format=rootfs', `${built.id}.rootfs.tar`);
      expect(await gnuTarNames(rootfs)).toEqual(tarNames(expected));
      expect(await extracted(rootfs)).toEqual(expected);
    }, 180_000);
  }

  it('gives the same archive from every writer, and again when built again', async () => {
    expect(digests.size).toBe(Object.keys(WRITERS).length);
    expect(new Set(digests.values()).size).toBe(1);
    const input = join(work, 'GNU-tar-posix.tar');
    const again = await build({ contents: [{ tar: await uploadFile(service, input) }] }, { noCache: true });
    expect(again.status, JSON.stringify(again.error)).toBe('succeeded');
    expect(again.result?.archive.digest).toBe(digests.get('GNU tar, posix'));
  }, 180_000);

  it('umoci (Go archive/tar, what Docker and containerd read layers with) unpacks the same bytes', async () => {
    const built = await build({ contents: [{ tar: await uploadFile(service, join(work, 'GNU-tar-posix.tar')) }] });
    const archive = await download(built.id, '?format=oci-archive', `${built.id}.oci.tar`);
    const layout = await mkdtemp(join(work, 'oci-'));
    await tool('tar', ['-C', layout, '-xf', archive]);
    const bundle = join(work, 'bundle');
    const unpack = await run('umoci', ['unpack', '--image', `${layout}:latest`, bundle]);
    expect(unpack.code, unpack.stderr).toBe(0);
    expect(await listByteTree(join(bundle, 'rootfs'))).toEqual(expected);
  }, 180_000);

  it('takes spec paths and targets that escape the same bytes (U+DC80..U+DCFF), and refuses a surrogate that is no byte', async () => {
    const blob = await uploadFile(service, join(work, 'GNU-tar-posix.tar'));
    const built = await build({
      contents: [{ tar: blob }, { text: 'new\n', to: '/caf\udce9/new' }, { symlink: '/s2', target: 'x\udcfe' }],
    });
    expect(built.status, JSON.stringify(built.error)).toBe('succeeded');
    const tree = await extracted(await download(built.id, '?format=rootfs', `${built.id}.spec.tar`));
    // Into the tar's own directory `caf\xe9`, not a second one.
    expect(tree.filter((e) => e.path.startsWith('caf')).map((e) => e.path)).toEqual(['caf\\xc3\\xa9', 'caf\\xe9', 'caf\\xe9/men\\xfa', 'caf\\xe9/new']);
    expect(tree.find((e) => e.path === 's2')).toEqual({ path: 's2', type: 'symlink', value: 'x\\xfe' });

    const refused = await build({ contents: [{ text: 'x', to: '/bad\ud800' }] });
    expect(refused.status).toBe('failed');
    expect(refused.error?.status).toBe(422);
    expect(refused.error?.detail).toContain("'/bad\\u{d800}' is not a name");
  }, 180_000);

  it('shows the bytes that are not UTF-8 as \\xNN where an error names them', async () => {
    const tarPath = join(work, 'dangling.tar');
    const script = [
      'import sys, tarfile',
      'with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as t:',
      '    link = tarfile.TarInfo("caf\\udce9/lien"); link.type = tarfile.LNKTYPE; link.linkname = "manquant\\udcff"',
      '    t.addfile(link)',
    ].join('\n');
    await tool('python3', ['-c', script, tarPath]);
    const failed = await build({ contents: [{ tar: await uploadFile(service, tarPath) }] });
    expect(failed.status).toBe('failed');
    expect(failed.error?.status).toBe(422);
    expect(failed.error?.detail).toContain("hard link 'caf\\xe9/lien' points to 'manquant\\xff'");
  }, 180_000);
});

describe('names that are not UTF-8 through a runAsRoot step (squashfs lower, GNU tar in the guest, its output read back)', () => {
  // Reads a file of the lower layers by its byte name, renames one (a whiteout of `x\xfe`), makes one.
  const RUN_AS_ROOT = [
    'cat "$(busybox printf \'/caf\\351/men\\372\')" > /copied',
    'busybox mv "$(busybox printf \'/x\\376\')" "$(busybox printf \'/z\\376\')"',
    'echo n > "$(busybox printf \'/new\\351\')"',
  ].join('\n');

  it('sees the lower names as their bytes and gives its own back as bytes', async () => {
    const tree = await uploadFile(service, join(work, 'GNU-tar-posix.tar'));
    const root = await uploadFile(service, await baseImageTar());
    const base = await build({ name: 'names/vm-base', contents: [{ tar: root }, { tar: tree }], config: { Env: ['PATH=/bin'] } });
    expect(base.status, JSON.stringify(base.error)).toBe('succeeded');
    const child = await waitForBuild(service, await submitBuild(service, { name: 'names/vm', compression: 'none', fromImage: { build: base.id }, runAsRoot: RUN_AS_ROOT }), 300_000);
    expect(child.status, JSON.stringify(child.error)).toBe('succeeded');

    const before = await extracted(await download(base.id, '?format=rootfs', `${base.id}.vm-base.tar`));
    const after = await extracted(await download(child.id, '?format=rootfs', `${child.id}.vm.tar`));
    const fe = before.find((e) => e.path === 'x\\xfe');
    expect(fe).toEqual({ path: 'x\\xfe', type: 'file', value: 'fe\\x0a' });
    const changed = [
      ...before.filter((e) => e.path !== 'x\\xfe'),
      { path: 'copied', type: 'file', value: 'menu\\x0a' },
      { path: 'new\\xe9', type: 'file', value: 'n\\x0a' },
      { path: 'z\\xfe', type: 'file', value: 'fe\\x0a' },
    ].sort((a, b) => Buffer.compare(bytes(a.path), bytes(b.path)));
    expect(after).toEqual(changed);
  }, 600_000);
});
