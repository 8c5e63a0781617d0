/**
 * The guest's initramfs: busybox-static, bash-static (the scripts' shell), the platform's
 * dynamically linked tools + their shared libraries, all from the guest root (guest-root.ts:
 * the host's, or the platform's unpacked packages), the kernel modules the guest
 * needs (in insmod order), and src/vm/guest/init as /init. Uncompressed: under TCG, gunzipping
 * ~10 MiB at boot costs more (~0.15 s) than QEMU reading it.
 */
import { readFile } from 'node:fs/promises';
import type { VmPlatform } from '../platform.ts';
import type { GuestFile } from './asset-inputs.ts';
import { Cpio } from './cpio.ts';
import type { GuestRoot } from './guest-root.ts';
import type { KernelModule } from './kernel-modules.ts';

export interface InitramfsInputs {
  platform: VmPlatform;
  root: GuestRoot;
  /** The assets' cache key, written to /etc/baler/assets-version. */
  key: string;
  /** In load order. */
  modules: readonly KernelModule[];
  guest: readonly GuestFile[];
}

/** The initramfs as a newc cpio. */
export async function buildInitramfs({ platform, root, key, modules, guest }: InitramfsInputs): Promise<Buffer> {
  const { busybox, bash, tools } = platform.initramfs;
  const cpio = new Cpio();
  for (const d of ['dev', 'proc', 'sys', 'tmp', 'run', 'mnt', 'etc', 'root']) cpio.dir(d);
  cpio.chardev('dev/console', 5, 1);
  cpio.chardev('dev/null', 1, 3, 0o666);
  // What the scripts see at /.baler/bin (bind-mounted): busybox with relative applet links,
  // so it works inside any chroot whatever the image holds, and bash. The guest's own /bin
  // is the same directory.
  const applets = root.busyboxApplets();
  cpio.file('baler/bin/busybox', await readFile(root.file(busybox)), 0o755);
  const wrapped = new Set(tools.filter((t) => t.wrap).map((t) => t.name));
  for (const a of applets) if (a !== 'busybox' && a !== 'bash' && !wrapped.has(a)) cpio.symlink(`baler/bin/${a}`, 'busybox');
  cpio.file('baler/bin/bash', await readFile(root.file(bash)), 0o755);
  cpio.symlink('bin', 'baler/bin');
  cpio.symlink('sbin', 'baler/bin');
  cpio.dir('baler/run');
  // /.baler -> baler, so the wrappers' paths hold in the guest (extraCommands) as in a chroot.
  cpio.symlink('.baler', 'baler');
  cpio.dir('baler/lib');
  cpio.dir('baler/libexec');
  // The tools run through the loader by its path (`ld.so --library-path`), so they work inside
  // any chroot, even an image without a libc.
  for (const tool of tools) {
    const bin = root.toolPath(tool.name);
    cpio.file(`baler/libexec/${tool.name}`, await readFile(bin), 0o755);
    for (const lib of root.sharedLibraries(bin)) {
      const isLoader = /^ld-linux[^/]*\.so/.test(lib.name);
      const rel = `baler/lib/${isLoader ? 'ld.so' : lib.name}`;
      if (!cpio.names.has(rel)) cpio.file(rel, await readFile(lib.path), 0o755);
    }
    if (tool.wrap) {
      const wrapper = `#!/.baler/bin/sh\nexec /.baler/lib/ld.so --library-path /.baler/lib /.baler/libexec/${tool.name} "$@"\n`;
      cpio.file(`baler/bin/${tool.name}`, Buffer.from(wrapper), 0o755);
    }
  }
  for (const m of modules) cpio.file(`lib/modules/${m.name}.ko`, m.data, 0o644);
  cpio.file('lib/modules/load-order', Buffer.from(modules.map((m) => m.name).join('\n') + '\n'));
  for (const f of guest) cpio.file(f.name === 'init' ? 'init' : `etc/baler/${f.name}`, f.data, f.name === 'init' ? 0o755 : 0o644);
  cpio.file('etc/baler/assets-version', Buffer.from(`${key}\n`));
  return cpio.finish();
}
