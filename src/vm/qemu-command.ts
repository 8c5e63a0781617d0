/**
 * The QEMU command line of a baler microVM: no NIC, the kernel and initramfs, the guest's two
 * serial ports (ttyS0 → QEMU's fd CONSOLE_FD, ttyS1 → QEMU's stdio: the scripts' output, and
 * for warm VMs the hand-over channel) and the step's disks as virtio-mmio block devices named
 * by serial.
 */
import type { VmAssets } from '../../scripts/build-vm-assets.mjs';
import { hostTscKhz } from './host.ts';

export type VmAccel = 'kvm' | 'tcg';

/**
 * QEMU writes the guest's console (ttyS0) to this file descriptor, an extra stdio stream of
 * QemuProcess (a socket pair in Node, hence a socket chardev) that it reads, keeping only the
 * tail: a file would grow for as long as the guest writes.
 */
export const CONSOLE_FD = 3;

export interface Drive {
  /** The guest finds the disk by this serial (see src/vm/guest/init). */
  id: string;
  file: string;
  readonly: boolean;
}

export interface QemuCommand {
  accel: VmAccel;
  cpus: number;
  memoryMiB: number;
  assets: VmAssets;
  /** Epoch seconds the guest's RTC starts at. */
  rtcSeconds: number;
  drives: readonly Drive[];
  /** A warm VM: boots and waits for `go` on ttyS1 (baler.pool=1). */
  pooled: boolean;
  /** Phase timestamps on the console from boot on (baler.trace=1). */
  trace: boolean;
}

export function qemuArgs(c: QemuCommand): string[] {
  const append = [
    'console=ttyS0',
    'panic=-1',
    'reboot=t',
    'quiet',
    `tsc_early_khz=${hostTscKhz()}`,
    'tsc=reliable',
    'cryptomgr.notests',
    'noreplace-smp',
    ...(c.pooled ? ['baler.pool=1'] : []),
    ...(c.trace ? ['baler.trace=1'] : []),
  ].join(' ');
  const rtcBase = new Date(c.rtcSeconds * 1000).toISOString().slice(0, 19);
  const drives: string[] = [];
  for (const d of c.drives) {
    drives.push(
      '-drive', `id=${d.id},file=${d.file},format=raw,if=none,${d.readonly ? 'readonly=on' : 'cache=unsafe'}`,
      '-device', `virtio-blk-device,drive=${d.id},serial=${d.id}`,
    );
  }
  return [
    '-M', 'microvm,pit=off,pic=off,rtc=on',
    // TCG's default CPU (qemu64) lacks SSE4.2/AVX: binaries built for x86-64-v2/v3 would die
    // with SIGILL. `max` is every feature TCG emulates; it boots as fast.
    ...(c.accel === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', 'tcg', '-cpu', 'max']),
    '-smp', String(c.cpus),
    '-m', String(c.memoryMiB),
    '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
    '-nic', 'none',
    '-rtc', `base=${rtcBase},clock=vm`,
    '-kernel', c.assets.kernel,
    '-initrd', c.assets.initrd,
    '-append', append,
    '-chardev', `socket,id=con,fd=${CONSOLE_FD}`,
    '-serial', 'chardev:con',
    '-chardev', 'stdio,id=log,signal=off',
    '-device', 'isa-serial,chardev=log,iobase=0x2f8,irq=3',
    ...drives,
  ];
}
