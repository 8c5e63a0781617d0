/**
 * linux/arm64 guests: QEMU's virt machine (the kernel boots directly: its Image is given as
 * is), Debian's cloud kernel for arm64, the console on the PL011 (ttyAMA0; virt has only one),
 * the scripts' port a virtio console (hvc0). Under TCG, on an amd64 host, it is emulated:
 * several times slower than amd64 under TCG (see bench/vm.ts).
 */
import type { VmPlatform } from '../platform.ts';
import { GUEST_BASH, GUEST_DEBIAN_PACKAGES, GUEST_TOOLS } from './guest-tools.ts';

export const arm64: VmPlatform = {
  name: 'linux/arm64',
  architecture: 'arm64',
  hostArch: 'arm64',
  qemu: { binary: 'qemu-system-aarch64' },
  // /proc/cpuinfo does not show it on arm64 (the kernel booting at EL2 does): /dev/kvm and the
  // probe VM (accelerator.ts) decide.
  cpuCanVirtualize: () => true,
  machineArgs: (accel) =>
    accel === 'kvm'
      ? ['-M', 'virt,gic-version=host', '-accel', 'kvm', '-cpu', 'host']
      : // `max` is every feature TCG emulates (binaries built for newer cores run); its default
        // pointer authentication (QARMA5) is slow to emulate, the implementation-defined one is not.
        // MTTCG (a host thread per vCPU) is TCG's default here: it only matters with cpus > 1.
        ['-M', 'virt,gic-version=3', '-accel', 'tcg', '-cpu', 'max,pauth-impdef=on'],
  kernelArgs: () => ['console=ttyAMA0'],
  consolePortArgs: (chardev) => ['-serial', `chardev:${chardev}`],
  // virtio-mmio like the disks (qemu-command.ts), so one module (virtio_mmio) serves both.
  logPortArgs: (chardev) => ['-device', 'virtio-serial-device', '-device', `virtconsole,chardev=${chardev}`],
  logDevice: 'hvc0',
  kernel: {
    metaPackage: 'linux-image-cloud-arm64',
    imagePrefix: 'vmlinuz-',
    // Debian installs arch/arm64/boot/Image uncompressed as vmlinuz-*: QEMU boots it as it is.
    bootImage: (image) => {
      if (image.readUInt32LE(0x38) !== 0x644d5241) throw new Error('not an arm64 kernel Image (no ARM\\x64 magic)');
      return image;
    },
  },
  initramfs: {
    // ext4 is built into the cloud kernel; virtio-mmio, virtio-blk, the virtio console, overlayfs
    // and squashfs are modules.
    modules: ['virtio_mmio', 'virtio_blk', 'virtio_console', 'overlay', 'squashfs'],
    busybox: '/bin/busybox',
    bash: GUEST_BASH,
    tools: GUEST_TOOLS,
    debianPackages: GUEST_DEBIAN_PACKAGES,
    libraryDirs: ['/lib/aarch64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/lib', '/usr/lib'],
  },
};
