/**
 * Everything the VM assets are made from, hashed into their cache key: the platform, the
 * kernel package and version, the busybox, bash, tools and libraries of the guest's root
 * (guest-root.ts: the host's, or the platform's unpacked packages), the guest's files under
 * src/vm/guest/, the modules loaded, and FORMAT. The key names the cache entry, so changing
 * how it is computed (even the order of its lines) orphans every cached asset.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { VmPlatform } from '../platform.ts';
import type { GuestRoot } from './guest-root.ts';
import { fileIdentity } from './host-files.ts';
import type { KernelPackage } from './kernel-package.ts';

/** Bump when the layout or contents of the assets change in a way the other inputs do not show. */
export const FORMAT = 6;

const guestDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'guest');

export interface GuestFile {
  name: string;
  data: Buffer;
}

/** src/vm/guest/'s files (init and what it reads), by name. */
export async function guestFiles(): Promise<GuestFile[]> {
  const names = (await readdir(guestDir)).sort();
  const files: GuestFile[] = [];
  for (const name of names) files.push({ name, data: await readFile(join(guestDir, name)) });
  return files;
}

/** The cache key of the assets for these inputs: 16 hex digits. */
export async function assetsKey(platform: VmPlatform, root: GuestRoot, kernel: KernelPackage, guest: readonly GuestFile[]): Promise<string> {
  const { busybox, bash, tools, modules } = platform.initramfs;
  const h = createHash('sha256');
  h.update(`format ${FORMAT}\nplatform ${platform.name}\nkernel ${kernel.pkg}=${kernel.version}\n`);
  h.update(`busybox ${await fileIdentity(root.file(busybox))}\n`);
  h.update(`bash ${await fileIdentity(root.file(bash))}\n`);
  for (const tool of tools) {
    const bin = root.toolPath(tool.name);
    h.update(`tool ${tool.name} ${tool.wrap} ${bin} ${await fileIdentity(bin)}\n`);
    for (const lib of root.sharedLibraries(bin)) h.update(`lib ${lib.name} ${lib.path} ${await fileIdentity(lib.path)}\n`);
  }
  for (const f of guest) h.update(`guest ${f.name} ${createHash('sha256').update(f.data).digest('hex')}\n`);
  h.update(`modules ${modules.join(',')}\n`);
  return h.digest('hex').slice(0, 16);
}
