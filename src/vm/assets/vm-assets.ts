/**
 * The QEMU microVM's kernel and initramfs, built from Debian packages into a cache directory,
 * idempotently: ensureVmAssets() returns at once when the cache already holds assets for the
 * current inputs (asset-inputs.ts), and builds them when any input changed.
 *
 *   kernel:    the platform's boot image from its kernel package's /boot/vmlinuz-* (amd64: the
 *              vmlinux in the bzImage, booted via PVH), downloaded with apt, nothing installed;
 *   initramfs: initramfs.ts, with the kernel package's modules.
 *
 * A guest of the host's architecture takes its programs from the host (its installed packages)
 * and its kernel through the host's apt; another architecture's come through a private apt
 * (apt.ts) as downloaded packages (foreign-root.ts), the host's dpkg untouched.
 *
 * Each entry is <cache>/<key>/{vmlinux,initrd.cpio,manifest.json}; the three newest of each
 * platform are kept. Processes sharing the cache take turns per platform (cache-lock.ts): apt's
 * private state, the downloads and the build are one process's at a time, and the next one
 * finds the assets built.
 * scripts/build-vm-assets.mjs is the command line over this (setup and the worker image).
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { VmPlatform } from '../platform.ts';
import { DEFAULT_VM_PLATFORM } from '../platforms/index.ts';
import { type Apt, foreignApt, hostApt } from './apt.ts';
import { newestCached, pruneEntries } from './asset-cache.ts';
import { withCacheLock } from './cache-lock.ts';
import { assetsKey, FORMAT, guestFiles, type GuestFile } from './asset-inputs.ts';
import { foreignRoot } from './foreign-root.ts';
import { type GuestRoot, hostRoot } from './guest-root.ts';
import { buildInitramfs } from './initramfs.ts';
import { moduleLoadOrder } from './kernel-modules.ts';
import { downloadKernel, resolveKernelPackage, type KernelPackage } from './kernel-package.ts';
import { sh } from './host-files.ts';

export interface VmAssets {
  /** The cache entry's directory (named by the inputs' hash). */
  dir: string;
  /** The kernel QEMU boots (`-kernel`); amd64: uncompressed ELF, booted via PVH; arm64: the Image. */
  kernel: string;
  /** Uncompressed newc cpio (`-initrd`). */
  initrd: string;
  /** JSON: key, kernel package/version/release, module load order, build time. */
  manifest: string;
}

export interface EnsureVmAssetsOptions {
  /** Default: $BALER_VM_CACHE, else <repo>/.cache/vm. */
  cacheDir?: string;
  /** Default: linux/amd64. */
  platform?: VmPlatform;
  /** Default: $BALER_VM_KERNEL_PACKAGE, else the platform's kernel meta package. */
  kernelPackage?: string;
  /** Rebuild even when the cache holds assets for the current inputs. */
  force?: boolean;
  /** Progress messages (default: stderr). */
  log?: (message: string) => void;
  /** The longest to wait while another process builds this platform's assets in the same cache (default ASSET_LOCK_WAIT_MS). */
  lockWaitMs?: number;
}

/**
 * How long a process waits for another's build of the same platform's assets: a first build
 * of a foreign platform's (apt lists, a kernel and the initramfs packages, about 60 MB) takes
 * a minute or two on an ordinary link; this leaves room for a slow one.
 */
export const ASSET_LOCK_WAIT_MS = 10 * 60_000;

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return resolve(env.BALER_VM_CACHE || join(repoRoot, '.cache', 'vm'));
}

/**
 * Ensures the kernel and initramfs for the current inputs exist in the cache and returns their
 * paths. Fast when cached (a few dpkg/apt-cache queries and hashes). When apt knows no kernel
 * candidate (no package lists), the newest cached assets are used.
 */
export async function ensureVmAssets(options: EnsureVmAssetsOptions = {}): Promise<VmAssets> {
  const log = options.log ?? ((m: string) => process.stderr.write(`[vm-assets] ${m}\n`));
  const platform = options.platform ?? DEFAULT_VM_PLATFORM;
  const cacheDir = resolve(options.cacheDir ?? defaultCacheDir());
  const meta = options.kernelPackage ?? process.env.BALER_VM_KERNEL_PACKAGE ?? platform.kernel.metaPackage;
  await mkdir(cacheDir, { recursive: true });
  const lock = join(cacheDir, `.lock-${platform.architecture}`);
  return withCacheLock(lock, { waitMs: options.lockWaitMs ?? ASSET_LOCK_WAIT_MS, what: `ensuring the ${platform.name} VM assets`, log }, () =>
    ensureLocked({ ...options, log, platform, cacheDir, meta }),
  );
}

/** ensureVmAssets, holding the platform's lock on the cache. */
async function ensureLocked(options: EnsureVmAssetsOptions & { log: (message: string) => void; platform: VmPlatform; cacheDir: string; meta: string }): Promise<VmAssets> {
  const { log, platform, cacheDir, meta } = options;
  const native = process.arch === platform.hostArch;
  let apt: Apt;
  try {
    apt = native ? hostApt(platform.architecture) : await foreignApt(cacheDir, platform.architecture, log);
  } catch (err) {
    const cached = await newestCached(cacheDir, platform);
    if (cached) return assetsOf(cached);
    throw err;
  }
  const kernel = await resolveKernelPackage(cacheDir, apt, meta);
  if (!kernel) {
    const cached = await newestCached(cacheDir, platform);
    if (cached) return assetsOf(cached);
    throw new Error(`apt knows no candidate for ${meta} (${platform.architecture}; run apt-get update) and nothing is cached in ${cacheDir}`);
  }
  const root = native ? hostRoot(platform) : await foreignRoot(cacheDir, apt, platform, log);
  const guest = await guestFiles();
  const key = await assetsKey(platform, root, kernel, guest);
  const dir = join(cacheDir, key);
  if (!options.force && existsSync(join(dir, 'manifest.json'))) return assetsOf(dir);
  if (options.force) await rm(dir, { recursive: true, force: true });
  log(`building VM assets ${key} (${kernel.pkg} ${kernel.version}) in ${cacheDir}`);
  const t0 = Date.now();
  const built = await buildAssets({ cacheDir, key, apt, kernel, root, guest, platform, log });
  await pruneEntries(cacheDir, key, platform);
  log(`VM assets ready in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${built}`);
  return assetsOf(built);
}

interface BuildInputs {
  cacheDir: string;
  key: string;
  apt: Apt;
  kernel: KernelPackage;
  root: GuestRoot;
  guest: readonly GuestFile[];
  platform: VmPlatform;
  log: (message: string) => void;
}

/** Builds the entry `key` in a private work dir and renames it into place; its directory. */
async function buildAssets({ cacheDir, key, apt, kernel, root, guest, platform, log }: BuildInputs): Promise<string> {
  const work = join(cacheDir, `.build-${key}-${randomBytes(4).toString('hex')}`);
  await mkdir(work, { recursive: true });
  try {
    const deb = await downloadKernel(cacheDir, apt, kernel, log);
    const x = join(work, 'deb');
    sh('dpkg-deb', ['-x', deb, x]);
    const boot = join(x, 'boot');
    const { imagePrefix } = platform.kernel;
    const image = (await readdir(boot)).find((f) => f.startsWith(imagePrefix));
    if (!image) throw new Error(`${deb} holds no /boot/${imagePrefix}*`);
    const release = image.slice(imagePrefix.length);
    const bootImage = platform.kernel.bootImage(await readFile(join(boot, image)));
    const modules = await moduleLoadOrder(join(x, 'lib', 'modules', release), platform.initramfs.modules);
    const initrd = await buildInitramfs({ platform, root, key, modules, guest });

    const out = join(work, 'out');
    await mkdir(out);
    await writeFile(join(out, 'vmlinux'), bootImage);
    await writeFile(join(out, 'initrd.cpio'), initrd);
    const manifest = {
      key,
      format: FORMAT,
      platform: platform.name,
      kernelPackage: kernel.pkg,
      kernelVersion: kernel.version,
      kernelRelease: release,
      modules: modules.map((m) => m.name),
      builtAt: new Date().toISOString(),
    };
    await writeFile(join(out, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
    const final = join(cacheDir, key);
    try {
      await rename(out, final);
    } catch (err) {
      // Another process built the same key meanwhile: theirs is as good as ours.
      if (!existsSync(join(final, 'manifest.json'))) throw err;
    }
    return final;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

function assetsOf(dir: string): VmAssets {
  return {
    dir,
    kernel: join(dir, 'vmlinux'),
    initrd: join(dir, 'initrd.cpio'),
    manifest: join(dir, 'manifest.json'),
  };
}
