/**
 * The initramfs's programs for a guest of another architecture than the host's: the
 * platform's Debian packages and the libraries they depend on, downloaded with its private apt
 * (apt.ts) and unpacked (`dpkg-deb -x`, nothing installed) into <cache>/roots/<arch>-<hash>,
 * named by the .debs it holds. Made once per set of package versions; which set is current is
 * remembered beside the apt state for as long as its package lists stay the same.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { VmPlatform } from '../platform.ts';
import { type Apt, aptCache, aptGet } from './apt.ts';
import { type GuestRoot, unpackedRoot } from './guest-root.ts';
import { sh } from './host-files.ts';
import { aptListsFingerprint } from './kernel-package.ts';

/**
 * `packages` and, transitively, the library packages (lib*) they depend on (Depends and
 * Pre-Depends): what their binaries load. Other dependencies (dpkg, debconf, passwd) are for
 * installing them, which is not done here.
 */
function withLibraries(apt: Apt, packages: readonly string[]): string[] {
  const all = new Set(packages);
  let next = [...packages];
  while (next.length > 0) {
    const out = aptCache(apt, ['depends', '--important', ...next]);
    if (out === undefined) throw new Error(`apt-cache depends ${next.join(' ')} failed for ${apt.architecture}`);
    next = [];
    for (const m of out.matchAll(/^\s+\|?(?:Pre)?Depends: ([^\s<>]+)/gm)) {
      const dep = (m[1] as string).replace(/:\w+$/, '');
      if (dep.startsWith('lib') && !all.has(dep)) {
        all.add(dep);
        next.push(dep);
      }
    }
  }
  return [...all].sort();
}

interface RootMemo {
  lists: string;
  packages: string[];
  debs: string[];
}

function rootName(architecture: string, debs: readonly string[]): string {
  return `${architecture}-${createHash('sha256').update(debs.join('\n')).digest('hex').slice(0, 16)}`;
}

/** The unpacked packages of `platform`'s initramfs, made when missing. */
export async function foreignRoot(cacheDir: string, apt: Apt, platform: VmPlatform, log: (message: string) => void): Promise<GuestRoot> {
  const roots = join(cacheDir, 'roots');
  const memoPath = join(cacheDir, `apt-${apt.architecture}`, 'root.json');
  const lists = (await aptListsFingerprint(apt.listsDir)) ?? '';
  const wanted = [...platform.initramfs.debianPackages].sort();
  try {
    const memo = JSON.parse(await readFile(memoPath, 'utf8')) as RootMemo;
    const dir = join(roots, rootName(apt.architecture, memo.debs));
    if (memo.lists === lists && memo.packages.join(' ') === wanted.join(' ') && existsSync(join(dir, '.complete'))) return unpackedRoot(dir, platform);
  } catch {
    /* none yet */
  }
  const packages = withLibraries(apt, wanted);
  const work = join(cacheDir, `.root-${apt.architecture}-${randomBytes(4).toString('hex')}`);
  await mkdir(join(work, 'root'), { recursive: true });
  try {
    log(`downloading the ${apt.architecture} packages of the initramfs: ${packages.join(' ')}`);
    aptGet(apt, ['download', ...packages], work);
    const debs = (await readdir(work)).filter((f) => f.endsWith('.deb')).sort();
    const name = rootName(apt.architecture, debs);
    const dir = join(roots, name);
    if (!existsSync(join(dir, '.complete'))) {
      for (const deb of debs) sh('dpkg-deb', ['-x', join(work, deb), join(work, 'root')]);
      await writeFile(join(work, 'root', '.complete'), `${debs.join('\n')}\n`);
      await mkdir(roots, { recursive: true });
      await rm(dir, { recursive: true, force: true });
      try {
        await rename(join(work, 'root'), dir);
      } catch (err) {
        // Another process unpacked the same packages meanwhile.
        if (!existsSync(join(dir, '.complete'))) throw err;
      }
    }
    await writeFile(memoPath, `${JSON.stringify({ lists, packages: wanted, debs } satisfies RootMemo)}\n`);
    // Older roots of this architecture only served asset builds that are done.
    for (const other of await readdir(roots)) if (other !== name && other.startsWith(`${apt.architecture}-`)) await rm(join(roots, other), { recursive: true, force: true });
    return unpackedRoot(dir, platform);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
