/**
 * Debian's busybox-static for linux/arm64, for images tests run emulated: its .deb fetched with
 * a private apt state (src/vm/assets/apt.ts: the host's dpkg architectures and lists untouched)
 * and unpacked with `dpkg-deb -x`. Cached in .cache/busybox-arm64 like other test inputs, so
 * only the first run downloads (the arm64 package lists, then one .deb).
 */
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { aptGet, foreignApt } from '../../src/vm/assets/apt.ts';
import { run } from './run.ts';

const CACHE = fileURLToPath(new URL('../../.cache/busybox-arm64', import.meta.url));

/** The path of an aarch64 static busybox (made once, then a stat). */
export async function arm64Busybox(): Promise<string> {
  const binary = join(CACHE, 'busybox');
  if (existsSync(binary)) return binary;
  await mkdir(CACHE, { recursive: true });
  const apt = await foreignApt(CACHE, 'arm64', (message) => process.stderr.write(`[arm64-busybox] ${message}\n`));
  const work = await mkdtemp(join(CACHE, '.work-'));
  try {
    aptGet(apt, ['download', 'busybox-static'], work);
    const deb = (await readdir(work)).find((f) => f.endsWith('.deb'));
    if (!deb) throw new Error('apt-get download busybox-static (arm64) left no .deb');
    const unpacked = await run('dpkg-deb', ['-x', join(work, deb), join(work, 'root')]);
    if (unpacked.code !== 0) throw new Error(`dpkg-deb -x ${deb}: ${unpacked.stderr}`);
    await copyFile(join(work, 'root/bin/busybox'), join(work, 'busybox'));
    // Atomic: a run killed half-way leaves no truncated binary behind.
    await rename(join(work, 'busybox'), binary);
    return binary;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
