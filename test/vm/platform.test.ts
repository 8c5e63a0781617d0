/**
 * The VM platform seam: everything architecture-specific on QEMU's command line and in the
 * accelerator choice comes from the VmPlatform (no VM is booted here).
 */
import { describe, expect, it } from 'vitest';
import { chooseAccel } from '../../src/vm/accelerator.ts';
import type { VmPlatform } from '../../src/vm/platform.ts';
import { amd64 } from '../../src/vm/platforms/amd64.ts';
import { arm64 } from '../../src/vm/platforms/arm64.ts';
import { DEFAULT_VM_PLATFORM } from '../../src/vm/platforms/index.ts';
import { qemuArgs } from '../../src/vm/qemu-command.ts';

const command = { cpus: 1, memoryMiB: 512, assets: { dir: 'd', kernel: 'vmlinux', initrd: 'initrd.cpio', manifest: 'm' }, rtcSeconds: 0, drives: [], pooled: false, trace: false };

/** A made-up second architecture, as issue 15's arm64 would add one. */
const other: VmPlatform = {
  ...amd64,
  name: 'linux/other',
  architecture: 'other',
  hostArch: process.arch === 'x64' ? 'arm64' : 'x64',
  qemu: { binary: 'qemu-system-other' },
  cpuCanVirtualize: () => true,
  machineArgs: (accel) => ['-M', 'virt', '-accel', accel],
  kernelArgs: () => ['console=ttyAMA0'],
  consolePortArgs: (chardev) => ['-serial', `chardev:${chardev}`],
  logPortArgs: (chardev) => ['-device', `virtio-serial-device`, '-device', `virtconsole,chardev=${chardev}`],
  logDevice: 'hvc0',
};

describe('VM platforms', () => {
  it('linux/amd64 is the default: microvm, the host CPU under KVM, every TCG feature otherwise, ttyS0/ttyS1, the host TSC', () => {
    expect(DEFAULT_VM_PLATFORM).toBe(amd64);
    const kvm = qemuArgs({ ...command, platform: amd64, accel: 'kvm' });
    expect(kvm.slice(0, 6)).toEqual(['-M', 'microvm,pit=off,pic=off,rtc=on', '-accel', 'kvm', '-cpu', 'host']);
    expect(qemuArgs({ ...command, platform: amd64, accel: 'tcg' }).slice(2, 6)).toEqual(['-accel', 'tcg', '-cpu', 'max']);
    const append = kvm[kvm.indexOf('-append') + 1] ?? '';
    expect(append).toMatch(/^console=ttyS0 tsc_early_khz=\d+ tsc=reliable noreplace-smp baler.log=ttyS1 panic=-1 reboot=t quiet cryptomgr.notests$/);
    expect(kvm.join(' ')).toContain('-chardev socket,id=con,fd=3 -serial chardev:con -chardev stdio,id=log,signal=off -device isa-serial,chardev=log,iobase=0x2f8,irq=3');
  });

  it('linux/arm64: virt, max CPU with the cheap pointer auth under TCG, the host CPU under KVM, ttyAMA0 and a virtio console as hvc0', () => {
    const tcg = qemuArgs({ ...command, platform: arm64, accel: 'tcg' });
    expect(tcg.slice(0, 6)).toEqual(['-M', 'virt,gic-version=3', '-accel', 'tcg', '-cpu', 'max,pauth-impdef=on']);
    expect(qemuArgs({ ...command, platform: arm64, accel: 'kvm' }).slice(0, 6)).toEqual(['-M', 'virt,gic-version=host', '-accel', 'kvm', '-cpu', 'host']);
    expect(tcg[tcg.indexOf('-append') + 1]).toBe('console=ttyAMA0 baler.log=hvc0 panic=-1 reboot=t quiet cryptomgr.notests');
    expect(tcg.join(' ')).toContain('-serial chardev:con -chardev stdio,id=log,signal=off -device virtio-serial-device -device virtconsole,chardev=log');
    expect(arm64.qemu.binary).toBe('qemu-system-aarch64');
    expect(arm64.kernel.metaPackage).toBe('linux-image-cloud-arm64');
  });

  it("another architecture's command line is all its platform's: nothing x86 is left in the runner", () => {
    const args = qemuArgs({ ...command, platform: other, accel: 'tcg', pooled: true }).join(' ');
    expect(args).toMatch(/^-M virt -accel tcg /);
    expect(args).toContain('-append console=ttyAMA0 baler.log=hvc0 panic=-1 reboot=t quiet cryptomgr.notests baler.pool=1');
    expect(args).toContain('-device virtconsole,chardev=log');
    expect(args).not.toMatch(/microvm|isa-serial|ttyS|tsc|-cpu/);
  });

  it('KVM only for a guest of the host CPU: another architecture runs under TCG without a probe; a setting is taken as it is', async () => {
    let probed = false;
    const probe = async () => {
      probed = true;
      return true;
    };
    expect(await chooseAccel(other, 'auto', probe)).toBe('tcg');
    expect(probed).toBe(false);
    expect(await chooseAccel(other, 'kvm', probe)).toBe('kvm');
    expect(await chooseAccel(amd64, 'tcg', probe)).toBe('tcg');
    if (process.arch === 'x64') expect(await chooseAccel(arm64, 'auto', probe)).toBe('tcg');
    expect(probed).toBe(false);
  });
});
