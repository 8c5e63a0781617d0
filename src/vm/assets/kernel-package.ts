/**
 * The guest kernel's Debian package: which version apt (the platform's, apt.ts) would take,
 * and its .deb, downloaded (`apt-get download`, nothing installed) into the cache's downloads/.
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type Apt, aptCache, aptGet } from './apt.ts';

export interface KernelPackage {
  /** The concrete image package (linux-image-<release>), not the meta package. */
  pkg: string;
  version: string;
}

/** A fingerprint of the package lists in `dir`: when it is unchanged, so is every candidate version. */
export async function aptListsFingerprint(dir: string): Promise<string | undefined> {
  const h = createHash('sha256');
  try {
    for (const name of (await readdir(dir)).sort()) {
      if (!name.endsWith('_Packages') && !name.endsWith('_Packages.lz4') && !name.endsWith('_Packages.gz')) continue;
      const st = await stat(join(dir, name));
      h.update(`${name} ${st.size} ${st.mtimeMs}\n`);
    }
  } catch {
    return undefined;
  }
  return h.digest('hex');
}

/**
 * The concrete kernel image package the meta package points at, with its candidate version;
 * undefined when apt knows none. apt-cache takes about a second, so the answer is remembered
 * beside the cache for as long as apt's package lists stay the same.
 */
export async function resolveKernelPackage(cacheDir: string, apt: Apt, meta: string): Promise<KernelPackage | undefined> {
  const memo = join(cacheDir, `kernel-package-${apt.architecture}.json`);
  const lists = await aptListsFingerprint(apt.listsDir);
  if (lists) {
    try {
      const saved = JSON.parse(await readFile(memo, 'utf8')) as { meta?: string; lists?: string; pkg?: string; version?: string };
      if (saved.meta === meta && saved.lists === lists && saved.pkg && saved.version) return { pkg: saved.pkg, version: saved.version };
    } catch {
      /* none yet */
    }
  }
  const depends = aptCache(apt, ['depends', '--no-recommends', '--no-suggests', meta]);
  const dep = depends?.match(/Depends:\s*(linux-image-[^\s<>]+)/)?.[1];
  const pkg = dep ?? meta;
  const policy = aptCache(apt, ['policy', pkg]);
  const version = policy?.match(/Candidate:\s*(\S+)/)?.[1];
  if (!version || version === '(none)') return undefined;
  if (lists) await writeFile(memo, JSON.stringify({ meta, lists, pkg, version }) + '\n');
  return { pkg, version };
}

/** The package's .deb in `cacheDir`/downloads, downloaded unless it is there already. */
export async function downloadKernel(cacheDir: string, apt: Apt, kernel: KernelPackage, log: (message: string) => void): Promise<string> {
  const downloads = join(cacheDir, 'downloads');
  await mkdir(downloads, { recursive: true });
  const existing = (await readdir(downloads)).find((f) => f.startsWith(`${kernel.pkg}_`) && f.endsWith('.deb') && f.includes(kernel.version.replace(/^\d+:/, '').replaceAll(':', '%3a')));
  if (existing) return join(downloads, existing);
  log(`downloading ${kernel.pkg}=${kernel.version}`);
  aptGet(apt, ['download', '-q', `${kernel.pkg}=${kernel.version}`], downloads);
  const deb = (await readdir(downloads)).find((f) => f.startsWith(`${kernel.pkg}_`) && f.endsWith('.deb'));
  if (!deb) throw new Error(`apt-get download ${kernel.pkg} produced no .deb`);
  // Keep only the newest download of each package.
  for (const f of await readdir(downloads)) if (f !== deb && f.startsWith(`${kernel.pkg}_`)) await rm(join(downloads, f), { force: true });
  return join(downloads, deb);
}
