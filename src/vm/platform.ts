/**
 * What one guest architecture needs, in one value: the QEMU that runs it and how, the kernel
 * it boots and where that comes from, what the initramfs holds for it, and when KVM may run
 * it. The runner (qemu-command.ts, accelerator.ts) and the asset build (assets/) read
 * everything architecture-specific from here; a new architecture is a new file in
 * platforms/ and an entry in platforms/index.ts.
 */

/** How QEMU runs the guest: hardware virtualisation, or TCG's emulation. */
export type VmAccel = 'kvm' | 'tcg';

export interface VmPlatform {
  /** The OCI platform its guests run, `os/architecture` (what a build for it produces). */
  readonly name: string;
  /** OCI and Debian architecture name: amd64, arm64. */
  readonly architecture: string;
  /** Node's `process.arch` of a host whose CPU runs this guest natively (KVM is only tried there). */
  readonly hostArch: NodeJS.Architecture;
  /** The QEMU system emulator (looked up in PATH). */
  readonly qemu: { readonly binary: string };
  /** Whether the host's CPU shows the virtualisation extensions KVM needs for this guest. */
  cpuCanVirtualize(): boolean;
  /** `-M …`, `-accel …`, `-cpu …`: the machine and the CPU model under `accel`. */
  machineArgs(accel: VmAccel): string[];
  /**
   * The kernel command line's platform part: the console device and how the guest clock is
   * set up (read at each VM start: it may ask the host, e.g. the TSC frequency).
   */
  kernelArgs(): string[];
  /** QEMU arguments putting the guest's kernel console (ttyS0 on amd64, ttyAMA0 on arm64) on `chardev`. */
  consolePortArgs(chardev: string): string[];
  /**
   * QEMU arguments putting the guest's second port (the scripts' output and the warm VMs'
   * hand-over, see src/vm/guest/init) on `chardev`.
   */
  logPortArgs(chardev: string): string[];
  /** That port's device in the guest's /dev (ttyS1 on amd64, hvc0 on arm64): /init takes it from `baler.log=`. */
  readonly logDevice: string;
  readonly kernel: VmKernelSource;
  readonly initramfs: VmInitramfsContents;
}

/** Where the guest kernel comes from: a Debian kernel package, downloaded, never installed. */
interface VmKernelSource {
  /** The meta package naming the current kernel (BALER_VM_KERNEL_PACKAGE overrides it). */
  readonly metaPackage: string;
  /** The kernel image's name prefix in the package's /boot (`vmlinuz-<release>`). */
  readonly imagePrefix: string;
  /** What QEMU's `-kernel` boots, from the package's kernel image. */
  bootImage(packaged: Buffer): Buffer;
}

/** What of the host goes into the guest's initramfs (the kernel's modules come from its package). */
interface VmInitramfsContents {
  /** Modules the guest loads, by name; their dependencies are added, in load order. */
  readonly modules: readonly string[];
  /** busybox, static: the guest's /bin and the scripts' /.baler/bin. */
  readonly busybox: string;
  /** bash, static: the scripts' shell. */
  readonly bash: string;
  /**
   * Dynamically linked tools shipped with their libraries; `wrap`: a wrapper of that name goes
   * in /.baler/bin for the scripts.
   */
  readonly tools: readonly { readonly name: string; readonly wrap: boolean }[];
  /**
   * The Debian packages that hold the above: installed on a host of this architecture
   * (scripts/setup.mjs's list has them), downloaded for another (assets/foreign-root.ts).
   */
  readonly debianPackages: readonly string[];
  /** Where the guest's loader looks for shared libraries (Debian's multiarch directories first). */
  readonly libraryDirs: readonly string[];
}
