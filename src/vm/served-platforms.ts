/**
 * Which platforms a worker runs VMs of: what BALER_VM_PLATFORMS names, else its host's own
 * (native: KVM where it can) and every other whose QEMU system emulator is installed
 * (emulated: TCG). A platform is also only served when its assets can be built (the worker
 * checks that at start: platform-runners.ts).
 */
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { VmPlatform } from './platform.ts';
import { DEFAULT_VM_PLATFORM, VM_PLATFORMS } from './platforms/index.ts';

export interface ServedPlatformChoice {
  /** The host's own first, then the emulated ones, in VM_PLATFORMS order. */
  platforms: VmPlatform[];
  /** Named by the operator: each must work (none is dropped quietly). */
  configured: boolean;
}

export interface HostView {
  /** Node's `process.arch` of the host. */
  arch: NodeJS.Architecture;
  /** Whether a program of this name is on PATH. */
  installed(binary: string): boolean;
  /** The platforms baler has (VM_PLATFORMS). */
  known: readonly VmPlatform[];
}

/** Whether `binary` is an executable file in one of PATH's directories. */
export function onPath(binary: string, path: string = process.env.PATH ?? ''): boolean {
  return path
    .split(delimiter)
    .filter(Boolean)
    .some((dir) => {
      try {
        accessSync(join(dir, binary), constants.X_OK);
        return true;
      } catch {
        return false;
      }
    });
}

const thisHost: HostView = { arch: process.arch, installed: (binary) => onPath(binary), known: VM_PLATFORMS };

/**
 * The platforms to serve: `configured` (BALER_VM_PLATFORMS: names of VM_PLATFORMS, each with
 * its QEMU installed, else an Error saying which), or by default the host's own platform and
 * every other whose QEMU is installed (the default platform alone on a host baler has no
 * platform for, which runs it emulated, as before platforms).
 */
export function choosePlatforms(configured: readonly string[] | undefined, host: HostView = thisHost): ServedPlatformChoice {
  const native = (p: VmPlatform) => isNative(p, host.arch);
  const hostFirst = (ps: VmPlatform[]) => [...ps.filter(native), ...ps.filter((p) => !native(p))];
  if (configured === undefined) {
    const platforms = hostFirst(host.known.filter((p) => native(p) || host.installed(p.qemu.binary)));
    return { platforms: platforms.length > 0 ? platforms : [DEFAULT_VM_PLATFORM], configured: false };
  }
  const names = host.known.map((p) => p.name).join(', ');
  const platforms = configured.map((name) => {
    const platform = host.known.find((p) => p.name === name);
    if (!platform) throw new Error(`BALER_VM_PLATFORMS names ${name}; baler runs VMs of ${names}`);
    if (!host.installed(platform.qemu.binary)) throw new Error(`BALER_VM_PLATFORMS names ${name}, but its emulator ${platform.qemu.binary} is not installed`);
    return platform;
  });
  if (platforms.length === 0) throw new Error(`BALER_VM_PLATFORMS names no platform; baler runs VMs of ${names}`);
  return { platforms: hostFirst([...new Set(platforms)]), configured: true };
}

/** Whether the host's CPU runs `platform`'s guests itself (KVM may run them), rather than emulating them. */
export function isNative(platform: VmPlatform, arch: NodeJS.Architecture = process.arch): boolean {
  return platform.hostArch === arch;
}
