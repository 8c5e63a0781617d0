/**
 * What every platform's initramfs carries besides its kernel modules: the same tools from the
 * same Debian packages, of the platform's architecture.
 */

/** A static bash, so PATH decides which tools run (busybox's sh would run its own applets before the image's programs: Debian builds it with SH_STANDALONE). */
export const GUEST_BASH = '/bin/bash-static';

/**
 * GNU tar is for /init only (busybox tar drops xattrs); busybox has no setcap/getcap/
 * setfattr/getfattr, so those get wrappers the scripts can run.
 */
export const GUEST_TOOLS = [
  { name: 'tar', wrap: false },
  { name: 'setcap', wrap: true },
  { name: 'getcap', wrap: true },
  { name: 'setfattr', wrap: true },
  { name: 'getfattr', wrap: true },
] as const;

/** The Debian packages the guest's busybox, bash and tools come from. */
export const GUEST_DEBIAN_PACKAGES = ['busybox-static', 'bash-static', 'tar', 'libcap2-bin', 'attr'] as const;
