/**
 * The tar conformance corpus (issue 13): one source tree holding what tars hold, written by
 * tools we did not write (GNU tar, bsdtar, Python's tarfile, busybox tar, `docker export`),
 * and trees compared entry by entry, names as bytes.
 *
 * Trees are made here with Node (Buffer paths, so names need not be UTF-8) and the Debian tools
 * `mkfifo` and `setfattr`; they are read back by a small walker run by Debian's python3, which
 * gives names, link targets and extended attributes as bytes (Node cannot read xattrs).
 */
import { createHash } from 'node:crypto';
import { chmod, chown, link, mkdir, open, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from './run.ts';

export const PYTHON = '/usr/bin/python3'; // Debian's, not a pyenv shim earlier on PATH
export const BUSYBOX = '/bin/busybox'; // Debian's busybox-static

/** What a tar can hold; a writer's tree leaves out what its format cannot represent. */
export type Feature =
  | 'files' // empty, small and > 1 MiB regular files, directories, symlinks, a hard link, a name with a tab and a newline
  | 'modes' // 4755, 2755 (directory), 1777 (directory), 0600
  | 'long100' // a path of 127 bytes (ustar can split it into prefix and name)
  | 'long255' // paths of more than 255 bytes (and a directory path of 106)
  | 'longLink' // a symlink target of 157 bytes, a hard link to a 127-byte path
  | 'nonUtf8' // `caf\xe9/men\xfa` (and a symlink and a hard link to it), `twin\xe9` beside `twin\xea` (both `twin\ufffd` if decoded)
  | 'xattrs' // user.* attributes on a file (one binary value) and a directory
  | 'fifo'
  | 'devices' // dev/null (character 1:3) and dev/loop9 (block 7:9), in dev/ as a root has them
  | 'sparse' // 8 MiB, a hole first and last, 6 data regions (GNU 'S' needs an extension block)
  | 'bigIds'; // an owner of 3000000:4000000 (base-256 in GNU headers, PAX uid/gid), for preserveOwners

export const ALL_FEATURES: readonly Feature[] = ['files', 'modes', 'long100', 'long255', 'longLink', 'nonUtf8', 'xattrs', 'fifo', 'devices', 'sparse', 'bigIds'];

const LONG100_DIR = `deep/${'a'.repeat(60)}`;
export const LONG100 = `${LONG100_DIR}/${'b'.repeat(60)}`;
const LONG255_DIR = `deep/${'c'.repeat(100)}`;
const LONG255 = `${LONG255_DIR}/${'d'.repeat(100)}/${'e'.repeat(100)}`;
const SPARSE_SIZE = 8 * 1024 * 1024;

/** Deterministic bytes (a counter through sha256), so that trees and tars are the same every run. */
function pseudoRandom(length: number, seed: string): Buffer {
  const out = Buffer.alloc(length);
  let block = createHash('sha256').update(seed).digest();
  for (let at = 0; at < length; at += block.length) {
    block.copy(out, at);
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

async function must(cmd: string, args: string[]): Promise<void> {
  const result = await run(cmd, args);
  if (result.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${result.stderr}`);
}

/**
 * Makes the source tree in `root` (which must exist, empty) with the features given. Owners are
 * varied (some entries 1234:5678) so that a spec's uid/gid visibly replaces them.
 */
export async function makeTree(root: string, features: ReadonlySet<Feature>): Promise<void> {
  const at = (...parts: Array<string | Buffer>): Buffer => Buffer.concat([Buffer.from(`${root}/`), ...parts.flatMap((p, i) => (i === 0 ? [Buffer.from(p)] : [Buffer.from('/'), Buffer.from(p)]))]);
  await chmod(root, 0o755);
  if (features.has('files')) {
    await mkdir(at('dir/sub'), { recursive: true });
    await writeFile(at('empty'), '');
    await writeFile(at('dir/small.txt'), 'hello from the corpus\n');
    await writeFile(at('dir/sub/big.bin'), pseudoRandom(1536 * 1024 + 123, 'big'));
    await symlink('dir/small.txt', at('symlink'));
    await symlink('../empty', at('dir/dangling-or-not'));
    await link(at('dir/small.txt'), at('hardlink'));
    await writeFile(at('with space, tab\tand\nnewline'), 'odd but valid bytes in a name\n');
    await chown(at('dir/small.txt'), 1234, 5678);
    await chown(at('dir/sub'), 1234, 5678);
  }
  if (features.has('modes')) {
    await mkdir(at('modes/setgid-dir'), { recursive: true });
    await mkdir(at('modes/sticky-dir'));
    await writeFile(at('modes/setuid'), '#!/bin/sh\n');
    await writeFile(at('modes/private'), 'secret\n');
    await writeFile(at('modes/setgid-dir/inside'), 'x');
    await chmod(at('modes/setuid'), 0o4755);
    await chmod(at('modes/setgid-dir'), 0o2755);
    await chmod(at('modes/sticky-dir'), 0o1777);
    await chmod(at('modes/private'), 0o600);
  }
  if (features.has('long100') || features.has('longLink')) {
    await mkdir(at(LONG100_DIR), { recursive: true });
    await writeFile(at(LONG100), 'a path of 127 bytes\n');
  }
  if (features.has('long255')) {
    await mkdir(at(LONG255_DIR, 'd'.repeat(100)), { recursive: true });
    await writeFile(at(LONG255), 'a path of more than 255 bytes\n');
    await writeFile(at(LONG255_DIR, 'f'.repeat(200)), 'a name of 200 bytes\n');
  }
  if (features.has('longLink')) {
    await symlink(`target/${'t'.repeat(150)}`, at('long-symlink'));
    await link(at(LONG100), at('long-hardlink'));
  }
  if (features.has('nonUtf8')) {
    await mkdir(at(Buffer.from('caf\xe9', 'latin1')));
    await writeFile(at(Buffer.from('caf\xe9', 'latin1'), Buffer.from('men\xfa', 'latin1')), 'latin-1 names\n');
    await writeFile(at(Buffer.from('twin\xe9', 'latin1')), 'e acute\n');
    await writeFile(at(Buffer.from('twin\xea', 'latin1')), 'e circumflex\n');
    await symlink(Buffer.from('caf\xe9/men\xfa', 'latin1'), at(Buffer.from('link-to-caf\xe9', 'latin1')));
    await link(at(Buffer.from('caf\xe9', 'latin1'), Buffer.from('men\xfa', 'latin1')), at(Buffer.from('hardlink-to-caf\xe9', 'latin1')));
  }
  if (features.has('xattrs')) {
    await mkdir(at('xattr-dir'));
    await writeFile(at('xattr-file'), 'with attributes\n');
    await must('setfattr', ['-n', 'user.comment', '-v', 'a comment', join(root, 'xattr-file')]);
    await must('setfattr', ['-n', 'user.binary', '-v', '0x00ff7f80', join(root, 'xattr-file')]);
    await must('setfattr', ['-n', 'user.dir', '-v', 'on a directory', join(root, 'xattr-dir')]);
  }
  if (features.has('fifo')) await must('mkfifo', ['-m', '0640', join(root, 'fifo')]);
  if (features.has('devices')) {
    await mkdir(at('dev'));
    await must('mknod', ['-m', '0666', join(root, 'dev/null'), 'c', '1', '3']);
    await must('mknod', ['-m', '0660', join(root, 'dev/loop9'), 'b', '7', '9']);
  }
  if (features.has('bigIds')) {
    await writeFile(at('big-ids'), 'owned by 3000000:4000000\n');
    await chown(at('big-ids'), 3_000_000, 4_000_000);
  }
  if (features.has('sparse')) {
    const file = await open(at('sparse'), 'w');
    try {
      // Data regions of 4 KiB (one of 100 bytes, unaligned) between holes; the file ends in a hole.
      const MiB = 1024 * 1024;
      for (const [offset, length] of [
        [64 * 1024, 4096],
        [MiB, 4096],
        [3 * MiB, 8192],
        [4 * MiB, 4096],
        [5 * MiB + 4096, 4096],
        [6 * MiB + 123, 100],
      ] as const) {
        await file.write(pseudoRandom(length, `sparse${offset}`), 0, length, offset);
      }
      await file.truncate(SPARSE_SIZE);
    } finally {
      await file.close();
    }
  }
}

/** One entry of a tree as the walker sees it; names, targets and xattr values as bytes. */
export interface TreeEntry {
  path: Buffer;
  type: 'file' | 'directory' | 'symlink' | 'fifo' | 'character-device' | 'block-device' | 'socket';
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  size: number;
  sha256: string;
  target: Buffer;
  rdev: number;
  xattrs: Map<string, Buffer>;
  /** The other paths of its hard-link group (same inode), sorted bytewise; empty for most entries. */
  links: Buffer[];
}

const WALKER = `
import hashlib, json, os, stat, sys
root = os.fsencode(sys.argv[1])
out = []
def walk(rel):
    for name in sorted(os.listdir(os.path.join(root, rel) if rel else root)):
        path = os.path.join(rel, name) if rel else name
        full = os.path.join(root, path)
        st = os.lstat(full)
        m = st.st_mode
        e = {'path': path.hex(), 'mode': stat.S_IMODE(m), 'uid': st.st_uid, 'gid': st.st_gid,
             'mtime': st.st_mtime_ns // 1000000000, 'size': 0, 'sha256': '', 'target': '', 'rdev': 0,
             'ino': st.st_ino, 'nlink': st.st_nlink, 'xattrs': {}}
        if stat.S_ISREG(m):
            e['type'] = 'file'; e['size'] = st.st_size
            h = hashlib.sha256()
            with open(full, 'rb') as f:
                for chunk in iter(lambda: f.read(1 << 20), b''): h.update(chunk)
            e['sha256'] = h.hexdigest()
        elif stat.S_ISDIR(m): e['type'] = 'directory'
        elif stat.S_ISLNK(m): e['type'] = 'symlink'; e['target'] = os.readlink(full).hex()
        elif stat.S_ISFIFO(m): e['type'] = 'fifo'
        elif stat.S_ISCHR(m): e['type'] = 'character-device'; e['rdev'] = st.st_rdev
        elif stat.S_ISBLK(m): e['type'] = 'block-device'; e['rdev'] = st.st_rdev
        else: e['type'] = 'socket'
        if not stat.S_ISLNK(m):
            for x in os.listxattr(full, follow_symlinks=False):
                e['xattrs'][x] = os.getxattr(full, x, follow_symlinks=False).hex()
        out.append(e)
        if stat.S_ISDIR(m): walk(path)
walk(b'')
json.dump(out, sys.stdout)
`;

interface WalkedEntry {
  path: string;
  type: TreeEntry['type'];
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  size: number;
  sha256: string;
  target: string;
  rdev: number;
  ino: number;
  nlink: number;
  xattrs: Record<string, string>;
}

/** Every entry under `root` (not root itself), parents before children, names sorted bytewise. */
export async function walkTree(root: string): Promise<TreeEntry[]> {
  const result = await run(PYTHON, ['-c', WALKER, root]);
  if (result.code !== 0) throw new Error(`walking ${root}: ${result.stderr}`);
  const walked = JSON.parse(result.stdout) as WalkedEntry[];
  const byInode = new Map<number, Buffer[]>();
  for (const e of walked) {
    if (e.type === 'directory' || e.nlink < 2) continue;
    byInode.set(e.ino, [...(byInode.get(e.ino) ?? []), Buffer.from(e.path, 'hex')]);
  }
  return walked.map((e) => {
    const path = Buffer.from(e.path, 'hex');
    const group = e.type === 'directory' ? [] : (byInode.get(e.ino) ?? []);
    return {
      path,
      type: e.type,
      mode: e.mode,
      uid: e.uid,
      gid: e.gid,
      mtime: e.mtime,
      size: e.size,
      sha256: e.sha256,
      target: Buffer.from(e.target, 'hex'),
      rdev: e.rdev,
      xattrs: new Map(Object.entries(e.xattrs).map(([k, v]) => [k, Buffer.from(v, 'hex')])),
      links: group.filter((p) => !p.equals(path)).sort(Buffer.compare),
    };
  });
}

/** Bytes as text: printable ASCII as is, everything else (and `\`) as `\xNN`. */
export function escapeBytes(bytes: Buffer): string {
  let out = '';
  for (const b of bytes) out += b >= 0x20 && b < 0x7f && b !== 0x5c ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`;
  return out;
}

export interface CompareOptions {
  /** Owners every actual entry must have (the spec's uid/gid); unset: the expected entry's. */
  owner?: { uid: number; gid: number };
  /** The mtime every actual entry must have (the build's `created`); unset: not compared. */
  mtime?: number;
  /** Compare owners at all (false: a writer's tree against its source). Default true. */
  owners?: boolean;
}

function describeXattrs(xattrs: Map<string, Buffer>): string {
  return (
    [...xattrs]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, v]) => `${k}=${escapeBytes(v)}`)
      .join(',') || '(none)'
  );
}

/**
 * Entry-by-entry differences between two trees (by name, as bytes): missing and extra entries,
 * and for each common one its type, mode, size, content sha256, link target, device number,
 * xattrs, hard-link group, owners and mtime as the options ask. Each difference is one line,
 * names escaped.
 */
export function compareTrees(expected: readonly TreeEntry[], actual: readonly TreeEntry[], options: CompareOptions = {}): string[] {
  const key = (p: Buffer) => p.toString('hex');
  const actualByName = new Map(actual.map((e) => [key(e.path), e]));
  const expectedNames = new Set(expected.map((e) => key(e.path)));
  const diffs: string[] = [];
  for (const want of expected) {
    const name = escapeBytes(want.path);
    const got = actualByName.get(key(want.path));
    if (!got) {
      diffs.push(`${name}: missing (expected ${want.type})`);
      continue;
    }
    const differ = (what: string, w: unknown, g: unknown) => {
      if (w !== g) diffs.push(`${name}: ${what} ${String(g)}, expected ${String(w)}`);
    };
    differ('type', want.type, got.type);
    if (want.type !== got.type) continue;
    differ('mode', want.mode.toString(8).padStart(4, '0'), got.mode.toString(8).padStart(4, '0'));
    if (want.type === 'file') {
      differ('size', want.size, got.size);
      differ('sha256', want.sha256, got.sha256);
    }
    if (want.type === 'symlink') differ('link target', escapeBytes(want.target), escapeBytes(got.target));
    if (want.type === 'character-device' || want.type === 'block-device') differ('device', want.rdev, got.rdev);
    differ('xattrs', describeXattrs(want.xattrs), describeXattrs(got.xattrs));
    differ('hard links', want.links.map(escapeBytes).join(' ') || '(none)', got.links.map(escapeBytes).join(' ') || '(none)');
    if (options.owners !== false) {
      differ('uid', options.owner?.uid ?? want.uid, got.uid);
      differ('gid', options.owner?.gid ?? want.gid, got.gid);
    }
    if (options.mtime !== undefined) differ('mtime', options.mtime, got.mtime);
  }
  for (const got of actual) if (!expectedNames.has(key(got.path))) diffs.push(`${escapeBytes(got.path)}: unexpected ${got.type}`);
  return diffs;
}

/** Extracts `tar` into `dir` with GNU tar as root: owners, modes, xattrs (all namespaces), sparse holes. */
export async function gnuExtract(tar: string, dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const result = await run('tar', ['--extract', '--file', tar, '--directory', dir, '--same-owner', '--same-permissions', '--numeric-owner', '--xattrs', '--xattrs-include=*']);
  if (result.code !== 0) throw new Error(`tar --extract ${tar}: ${result.stderr}`);
}

const PY_TARFILE = `
import sys, tarfile
src, out, fmt = sys.argv[1], sys.argv[2], sys.argv[3]
fmt = {'ustar': tarfile.USTAR_FORMAT, 'gnu': tarfile.GNU_FORMAT, 'pax': tarfile.PAX_FORMAT}[fmt]
# Names are bytes on disk; surrogateescape carries the non-UTF-8 ones through unchanged.
with tarfile.open(out, 'w', format=fmt, encoding='utf-8', errors='surrogateescape') as t:
    t.add(src, arcname='.')
`;

/** A tar writer and its options: everything but `docker export`, which needs a dockerd. */
export type TarWriter =
  | { tool: 'gnu-tar'; format: 'v7' | 'ustar' | 'oldgnu' | 'gnu' | 'posix'; sparse?: '' | '0.0' | '0.1' | '1.0'; compress?: 'gzip' | 'xz' | 'bzip2' | 'zstd' }
  | { tool: 'bsdtar'; format: 'ustar' | 'pax' | 'gnutar' }
  | { tool: 'python'; format: 'ustar' | 'gnu' | 'pax' }
  | { tool: 'busybox'; format: 'gnu' }; // busybox has no format option: GNU magic, L/K long names

/**
 * Writes the tree in `src` (as `.`, `./name`, … as users write roots) to `out` with the tool.
 * GNU tar stores xattrs only in its posix format (`--xattrs`); bsdtar stores them and reads
 * sparse files' holes by default, whatever the format can make of them.
 */
export async function writeTar(writer: TarWriter, src: string, out: string): Promise<void> {
  let result;
  switch (writer.tool) {
    case 'gnu-tar': {
      const sparse = writer.sparse === undefined ? [] : ['--sparse', ...(writer.sparse ? [`--sparse-version=${writer.sparse}`] : [])];
      const xattrs = writer.format === 'posix' ? ['--xattrs', '--xattrs-include=*'] : [];
      const compress = writer.compress ? [`--${writer.compress}`] : [];
      result = await run('tar', ['--create', '--file', out, `--format=${writer.format}`, ...sparse, ...xattrs, ...compress, '--directory', src, '.']);
      break;
    }
    case 'bsdtar':
      result = await run('bsdtar', ['--create', '--file', out, '--format', writer.format, '-C', src, '.']);
      break;
    case 'python':
      result = await run(PYTHON, ['-c', PY_TARFILE, src, out, writer.format]);
      break;
    case 'busybox':
      result = await run(BUSYBOX, ['tar', '-c', '-f', out, '-C', src, '.']);
      break;
  }
  // Anything on stderr is worth failing on (bsdtar exits 0 after leaving out a name too long
  // for the format), except bsdtar's note that it wrote a non-UTF-8 name as bytes (PAX
  // `hdrcharset=BINARY`, or as is in the other formats).
  // (bsdtar 3.6 prints its warnings joined by ': ', without the file's name.)
  const stderr = result.stderr.replace(/Can't translate (pathname|linkname) '[^']*' to UTF-8/g, '').replace(/[:\s]/g, '');
  if (result.code !== 0 || stderr !== '') throw new Error(`${writer.tool} ${writer.format}: exit ${result.code}: ${result.stderr}`);
}
