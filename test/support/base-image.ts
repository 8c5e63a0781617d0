/**
 * A small base image root for VM tests, made from the host's Debian binaries: static busybox
 * (and its applet links), plus setcap/getcap with the shared libraries they need.
 */
import { chmod, copyFile, mkdir, mkdtemp, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { BUSYBOX } from './images.ts';
import { run } from './run.ts';

const APPLETS = ['sh', 'cat', 'ls', 'id', 'stat', 'rm', 'mkdir', 'touch', 'echo', 'chown', 'chmod', 'cp', 'ln', 'dd', 'sleep', 'ip', 'nc', 'wc', 'grep', 'head', 'true', 'false', 'env'];
const LIBCAP_TOOLS = ['/usr/sbin/setcap', '/usr/sbin/getcap'];

async function sharedLibraries(binary: string): Promise<string[]> {
  const ldd = await run('ldd', [binary]);
  if (ldd.code !== 0) throw new Error(`ldd ${binary}: ${ldd.stderr}`);
  return [...ldd.stdout.matchAll(/(\/[^\s]+\.so[^\s]*)/g)].map((m) => m[1] as string);
}

/** Returns the path of a tar (GNU tar) of the base root; `extra` files are added to it. */
export async function baseImageTar(extra: Record<string, string> = {}): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'baler-base-'));
  const root = join(dir, 'root');
  await mkdir(join(root, 'bin'), { recursive: true });
  await copyFile(BUSYBOX, join(root, 'bin/busybox'));
  for (const applet of APPLETS) await symlink('busybox', join(root, 'bin', applet));
  for (const tool of LIBCAP_TOOLS) {
    await copyFile(tool, join(root, 'bin', tool.split('/').pop() as string));
    for (const lib of await sharedLibraries(tool)) {
      await mkdir(join(root, dirname(lib)), { recursive: true });
      await copyFile(lib, join(root, lib));
    }
  }
  for (const [path, content] of Object.entries(extra)) {
    await mkdir(join(root, dirname(path)), { recursive: true });
    await writeFile(join(root, path), content);
    await chmod(join(root, path), 0o644);
  }
  const tar = join(dir, 'base.tar');
  const result = await run('tar', ['--numeric-owner', '-C', root, '-cf', tar, '.']);
  if (result.code !== 0) throw new Error(result.stderr);
  return tar;
}
