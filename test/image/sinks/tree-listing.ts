/** A file tree as extracted by GNU tar, listed entry by entry for comparisons (test helper). */
import { createHash } from 'node:crypto';
import { lstat, mkdtemp, readFile, readdir, readlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../support/run.ts';

export interface ListedFile {
  type: 'file' | 'directory' | 'symlink' | 'fifo' | 'char' | 'block' | 'socket';
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  /** sha256 of a regular file's bytes, or a symlink's target. */
  content?: string;
  /** For a file with several links: every path of its inode, sorted. */
  links?: string[];
  /** Extended attributes, `name=0xhex`, sorted. */
  xattrs?: string[];
}

/**
 * Extract a tar with GNU tar as root: owners, modes, xattrs, hard links and times kept. Into a
 * new directory under `parent` (default: the OS temp dir).
 */
export async function extract(tar: string, parent = tmpdir()): Promise<string> {
  const dir = await mkdtemp(join(parent, 'x-'));
  const result = await run('tar', ['--same-owner', '--same-permissions', '--numeric-owner', '--xattrs', '--xattrs-include=*', '-C', dir, '-xf', tar]);
  if (result.code !== 0) throw new Error(`tar -x ${tar}: ${result.stderr}`);
  return dir;
}

/** Every path below `root` (not root itself) with its metadata, content hash and link group. */
export async function listTree(root: string): Promise<Map<string, ListedFile>> {
  const out = new Map<string, ListedFile>();
  const inodes = new Map<number, string[]>();
  const walk = async (rel: string) => {
    for (const name of (await readdir(join(root, rel))).sort()) {
      const path = rel ? `${rel}/${name}` : name;
      const abs = join(root, path);
      const st = await lstat(abs);
      const type = st.isFile()
        ? 'file'
        : st.isDirectory()
          ? 'directory'
          : st.isSymbolicLink()
            ? 'symlink'
            : st.isFIFO()
              ? 'fifo'
              : st.isCharacterDevice()
                ? 'char'
                : st.isBlockDevice()
                  ? 'block'
                  : 'socket';
      const entry: ListedFile = { type, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, size: type === 'file' ? st.size : 0, mtime: Math.floor(st.mtimeMs / 1000) };
      if (type === 'file')
        entry.content = createHash('sha256')
          .update(await readFile(abs))
          .digest('hex');
      if (type === 'symlink') entry.content = await readlink(abs);
      if (type === 'file' && st.nlink > 1) inodes.set(st.ino, [...(inodes.get(st.ino) ?? []), path]);
      out.set(path, entry);
      if (type === 'directory') await walk(path);
    }
  };
  await walk('');
  for (const paths of inodes.values()) for (const path of paths) (out.get(path) as ListedFile).links = [...paths].sort();

  const attrs = await run('getfattr', ['-R', '-P', '-d', '-m', '-', '-e', 'hex', '.'], { cwd: root });
  let current: string | undefined;
  for (const line of attrs.stdout.split('\n')) {
    if (line.startsWith('# file: ')) current = line.slice('# file: '.length).replace(/^\.\//, '');
    else if (line && current !== undefined) {
      const entry = out.get(current);
      if (entry) entry.xattrs = [...(entry.xattrs ?? []), line].sort();
    }
  }
  return out;
}
