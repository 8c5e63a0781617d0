/** Inputs for image tests, made with real tools: a busybox root tar. */
import { copyFile, mkdir, mkdtemp, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from './run.ts';

export const BUSYBOX = '/bin/busybox'; // Debian's busybox-static

/**
 * A tar with /bin/busybox and /bin/sh -> busybox, written by GNU tar; returns its path.
 * `busybox`: another static busybox (another architecture's) than the host's.
 */
export async function busyboxTar(busybox = BUSYBOX): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'baler-busybox-'));
  const root = join(dir, 'root');
  await mkdir(join(root, 'bin'), { recursive: true });
  await copyFile(busybox, join(root, 'bin/busybox'));
  await symlink('busybox', join(root, 'bin/sh'));
  const path = join(dir, 'busybox.tar');
  const result = await run('tar', ['--numeric-owner', '-C', root, '-cf', path, '.']);
  if (result.code !== 0) throw new Error(result.stderr);
  return path;
}

export async function sha256File(path: string): Promise<string> {
  const result = await run('sha256sum', [path]);
  if (result.code !== 0) throw new Error(result.stderr);
  return `sha256:${result.stdout.split(' ')[0]}`;
}
