/**
 * linux/amd64 guests: QEMU's microvm machine (no PCI, no firmware: the kernel boots directly via
 * PVH), Debian's cloud kernel, the host's TSC frequency handed to the guest.
 */
import { extractVmlinux } from '../assets/bzimage.ts';
import type { VmPlatform } from '../platform.ts';
import { GUEST_BASH, GUEST_DEBIAN_PACKAGES, GUEST_TOOLS } from './guest-tools.ts';
import { hostTscKhz, x86CpuHasVirtualization } from './x86-tsc.ts';

export const amd64: VmPlatform = {
  name: 'linux/amd64',
  architecture: 'amd64',
  hostArch: 'x64',
  qemu: { binary: 'qemu-system-x86_64' },
  cpuCanVirtualize: x86CpuHasVirtualization,
  machineArgs: (accel) => [
    '-M',
    'microvm,pit=off,pic=off,rtc=on',
    // TCG's default CPU (qemu64) lacks SSE4.2/AVX: binaries built for x86-64-v2/v3 would die
    // with SIGILL. `max` is every feature TCG emulates; it boots as fast.
    ...(accel === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', 'tcg', '-cpu', 'max']),
  ],
  kernelArgs: () => [
    'console=ttyS0',
    // The TSC runs at the host's rate: the guest takes it as given instead of calibrating.
    `tsc_early_khz=${hostTscKhz()}`,
    'tsc=reliable',
    // Skips patching SMP alternatives at boot (one vCPU).
    'noreplace-smp',
  ],
  consolePortArgs: (chardev) => ['-serial', `chardev:${chardev}`],
  // microvm has one ISA serial port by default; the second (ttyS1) at its standard address.
  logPortArgs: (chardev) => ['-device', `isa-serial,chardev=${chardev},iobase=0x2f8,irq=3`],
  logDevice: 'ttyS1',
  kernel: {
    metaPackage: 'linux-image-cloud-amd64',
    imagePrefix: 'vmlinuz-',
    // QEMU boots the uncompressed ELF via PVH, faster than the bzImage's own decompressor.
    bootImage: extractVmlinux,
  },
  initramfs: {
    // ext4 and crc32c are built into the cloud kernel.
    modules: ['virtio_mmio', 'virtio_blk', 'overlay', 'squashfs'],
    busybox: '/bin/busybox',
    bash: GUEST_BASH,
    tools: GUEST_TOOLS,
    debianPackages: GUEST_DEBIAN_PACKAGES,
    libraryDirs: ['/lib/x86_64-linux-gnu', '/usr/lib/x86_64-linux-gnu', '/lib64', '/lib', '/usr/lib'],
  },
};
