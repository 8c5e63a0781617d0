/**
 * The QEMU command line of a baler microVM: no NIC, the kernel and initramfs, the guest's two
 * ports (the console → QEMU's fd CONSOLE_FD; the second, the log port → QEMU's stdio: the scripts'
 * output, and for warm VMs the hand-over channel) and the step's disks as virtio-mmio block
 * devices named by serial. What depends on the guest's architecture comes from its VmPlatform.
 */
import type { VmAssets } from './assets/vm-assets.ts';
import type { VmAccel, VmPlatform } from './platform.ts';
import { WARM_INPUT_BYTES } from './step-files.ts';

/**
 * QEMU writes the guest's console (ttyS0 on amd64) to this file descriptor, an extra stdio stream of
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
  platform: VmPlatform;
  accel: VmAccel;
  cpus: number;
  memoryMiB: number;
  assets: VmAssets;
  /** Epoch seconds the guest's RTC starts at. */
  rtcSeconds: number;
  drives: readonly Drive[];
  /** A warm VM: boots and waits for `go` on the log port (baler.pool=1). */
  pooled: boolean;
  /** Phase timestamps on the console from boot on (baler.trace=1). */
  trace: boolean;
}

export function qemuArgs(c: QemuCommand): string[] {
  // baler.log= names the second port for /init (src/vm/guest/init).
  const append = [
    ...c.platform.kernelArgs(),
    `baler.log=${c.platform.logDevice}`,
    'panic=-1',
    'reboot=t',
    'quiet',
    'cryptomgr.notests',
    // A warm VM checks its input disks have this size when its job arrives (src/vm/guest/init).
    ...(c.pooled ? ['baler.pool=1', `baler.input_sectors=${WARM_INPUT_BYTES / 512}`] : []),
    ...(c.trace ? ['baler.trace=1'] : []),
  ].join(' ');
  const rtcBase = new Date(c.rtcSeconds * 1000).toISOString().slice(0, 19);
  const drives: string[] = [];
  for (const d of c.drives) {
    // werror=report: a host disk that fills up under a writable drive gives the guest an I/O
    // error, and the step fails; QEMU's default (enospc) pauses the VM, idle until the timeout.
    drives.push('-drive', `id=${d.id},file=${d.file},format=raw,if=none,${d.readonly ? 'readonly=on' : 'cache=unsafe,werror=report'}`, '-device', `virtio-blk-device,drive=${d.id},serial=${d.id}`);
  }
  return [
    ...c.platform.machineArgs(c.accel),
    '-smp',
    String(c.cpus),
    '-m',
    String(c.memoryMiB),
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    '-no-reboot',
    '-nic',
    'none',
    '-rtc',
    `base=${rtcBase},clock=vm`,
    '-kernel',
    c.assets.kernel,
    '-initrd',
    c.assets.initrd,
    '-append',
    append,
    '-chardev',
    `socket,id=con,fd=${CONSOLE_FD}`,
    ...c.platform.consolePortArgs('con'),
    '-chardev',
    'stdio,id=log,signal=off',
    ...c.platform.logPortArgs('log'),
    ...drives,
  ];
}
