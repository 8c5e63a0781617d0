/**
 * Directory trees whose names are bytes that are not UTF-8, made and read back through the
 * kernel with Buffer paths (Node never decodes them), and tars listed by GNU tar as bytes.
 */
import { spawn } from 'node:child_process';
import { link, lstat, mkdir, readdir, readFile, readlink, symlink, writeFile } from 'node:fs/promises';

/** A byte string written as text: `\xNN` for every byte outside printable ASCII (and `\` itself). */
export function showBytes(bytes: Buffer): string {
  let out = '';
  for (const byte of bytes) out += byte >= 0x20 && byte < 0x7f && byte !== 0x5c ? String.fromCharCode(byte) : `\\x${byte.toString(16).padStart(2, '0')}`;
  return out;
}

/** A byte string from text where `\xNN` is a byte (what showBytes writes). */
export function bytes(text: string): Buffer {
  return Buffer.from(
    text.replace(/\\x([0-9a-f]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16))),
    'latin1',
  );
}

function under(root: string, rel: string): Buffer {
  return Buffer.concat([Buffer.from(`${root}/`), bytes(rel)]);
}

/** A path longer than ustar's 100-byte name field, not splittable at an ASCII `/`: PAX or GNU long-name form. */
export const LONG_PATH = `long\\xe9/${'n\\xff'.repeat(60)}/${'m\\xfe'.repeat(30)}`;
/** A path over 100 bytes that ustar holds split at its `/`: prefix and name, both raw bytes. */
export const SPLIT_PATH = `${'p\\xe9'.repeat(40)}/${'q\\xfe'.repeat(30)}`;
/** A symlink target longer than ustar's 100-byte link field. */
export const LONG_TARGET = 't\\xe9'.repeat(60);

/**
 * The tree every writer archives: `caf\xe9/men\xfa`, `caf\xc3\xa9` (valid UTF-8), `x\xff` and
 * `x\xfe` (differing only in a byte that is not UTF-8), symlinks and a hard link with such
 * targets, a long path (one that ustar can split, one it cannot) and a long target.
 */
export async function makeByteNameTree(root: string): Promise<void> {
  await mkdir(under(root, 'caf\\xe9'), { recursive: true });
  await writeFile(under(root, 'caf\\xe9/men\\xfa'), 'menu\n');
  await writeFile(under(root, 'caf\\xc3\\xa9'), 'valid utf-8\n');
  await writeFile(under(root, 'x\\xff'), 'ff\n');
  await writeFile(under(root, 'x\\xfe'), 'fe\n');
  await symlink(bytes('caf\\xe9/men\\xfa'), under(root, 'sym\\xe9'));
  await symlink(bytes(LONG_TARGET), under(root, 'longsym'));
  await link(under(root, 'x\\xff'), under(root, 'hard\\xfa'));
  await mkdir(under(root, LONG_PATH.slice(0, LONG_PATH.lastIndexOf('/'))), { recursive: true });
  await writeFile(under(root, LONG_PATH), 'long\n');
  await mkdir(under(root, SPLIT_PATH.slice(0, SPLIT_PATH.indexOf('/'))));
  await writeFile(under(root, SPLIT_PATH), 'split\n');
}

export interface ByteTreeEntry {
  path: string;
  type: 'dir' | 'file' | 'symlink' | 'other';
  /** Symlink target, or a file's contents, as showBytes writes them. */
  value?: string;
  /** For files with more than one link: the first path (in byte order) of the same inode. */
  linkedTo?: string;
}

/** Every entry under `root` (bytes as showBytes writes them), in byte order of the paths. */
export async function listByteTree(root: string): Promise<ByteTreeEntry[]> {
  const found: Array<{ path: Buffer; entry: Omit<ByteTreeEntry, 'path'>; ino: number; nlink: number }> = [];
  const walk = async (dir: Buffer, rel: Buffer | null): Promise<void> => {
    for (const name of await readdir(dir, { encoding: 'buffer' })) {
      const full = Buffer.concat([dir, Buffer.from('/'), name]);
      const path = rel ? Buffer.concat([rel, Buffer.from('/'), name]) : name;
      const info = await lstat(full);
      if (info.isDirectory()) {
        found.push({ path, entry: { type: 'dir' }, ino: info.ino, nlink: 1 });
        await walk(full, path);
      } else if (info.isSymbolicLink()) {
        found.push({ path, entry: { type: 'symlink', value: showBytes(await readlink(full, { encoding: 'buffer' })) }, ino: info.ino, nlink: 1 });
      } else if (info.isFile()) {
        found.push({ path, entry: { type: 'file', value: showBytes(await readFile(full)) }, ino: info.ino, nlink: info.nlink });
      } else {
        found.push({ path, entry: { type: 'other' }, ino: info.ino, nlink: 1 });
      }
    }
  };
  await walk(Buffer.from(root), null);
  found.sort((a, b) => Buffer.compare(a.path, b.path));
  const firstOfInode = new Map<number, string>();
  return found.map(({ path, entry, ino, nlink }) => {
    const shown = showBytes(path);
    if (nlink < 2) return { path: shown, ...entry };
    const first = firstOfInode.get(ino);
    if (first === undefined) {
      firstOfInode.set(ino, shown);
      return { path: shown, ...entry };
    }
    return { path: shown, ...entry, linkedTo: first };
  });
}

/** A command's exit code and its stdout and stderr as bytes. */
export function runForBytes(cmd: string, args: readonly string[]): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code: code ?? 1, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString() }));
  });
}

/** The names GNU tar lists for a tar, as bytes (shown by showBytes), in the tar's order. */
export async function gnuTarNames(tarPath: string): Promise<string[]> {
  const listed = await runForBytes('tar', ['--quoting-style=literal', '-tf', tarPath]);
  if (listed.code !== 0) throw new Error(`tar -t failed: ${listed.stderr}`);
  const names: string[] = [];
  let start = 0;
  for (let end = listed.stdout.indexOf(0x0a); end !== -1; end = listed.stdout.indexOf(0x0a, start)) {
    names.push(showBytes(listed.stdout.subarray(start, end)));
    start = end + 1;
  }
  return names;
}
