/**
 * Where the initramfs's programs (busybox, bash, the tools and their libraries) are read from:
 * the host itself when the guest has the host's architecture (its installed packages), else a
 * directory the platform's Debian packages were unpacked into (foreign-root.ts), whose
 * binaries the host cannot run: their libraries come from their ELF headers, not ldd.
 */
import { existsSync, lstatSync, readFileSync, readlinkSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { VmPlatform } from '../platform.ts';
import { elfNeeds } from './elf-deps.ts';
import { sh, sharedLibraries, toolPath } from './host-files.ts';

export interface SharedLibrary {
  /** The file name the loader looks for (a soname; the loader's own name). */
  name: string;
  /** Where its bytes are on the host. */
  path: string;
}

export interface GuestRoot {
  /** A file of the root by its path in it, as a host path. */
  file(path: string): string;
  /** Where a tool is installed (a host path). */
  toolPath(name: string): string;
  /** The shared libraries a binary loads, the loader included. */
  sharedLibraries(binary: string): SharedLibrary[];
  /** busybox's applets. */
  busyboxApplets(): string[];
}

export function hostRoot(platform: VmPlatform): GuestRoot {
  return {
    file: (path) => path,
    toolPath: (name) => toolPath(name, platform.initramfs.debianPackages),
    sharedLibraries: (binary) => sharedLibraries(binary).map((path) => ({ name: basename(path), path })),
    busyboxApplets: () => sh(platform.initramfs.busybox, ['--list']).split('\n').filter(Boolean),
  };
}

/** `path` of `root` with every symlink followed inside `root` (absolute targets are the root's). */
function resolveIn(root: string, path: string): string {
  let p = path;
  for (let hops = 0; hops < 40; hops++) {
    const host = join(root, p);
    if (!existsSync(host) && !lstatSync(host, { throwIfNoEntry: false })) return host;
    const st = lstatSync(host);
    if (!st.isSymbolicLink()) return host;
    const target = readlinkSync(host);
    p = target.startsWith('/') ? target : join(dirname(p), target);
  }
  throw new Error(`too many symlinks at ${path} in ${root}`);
}

/**
 * The applet names busybox keeps as one NUL-separated table ("[", "[[", "acpid", ..., then an
 * empty name): what `busybox --list` prints, read without running it.
 */
function appletTable(busybox: Buffer): string[] {
  const at = busybox.indexOf(Buffer.from('[\0[[\0'));
  if (at < 0) throw new Error('no applet table in busybox');
  const names: string[] = [];
  for (let p = at; ; ) {
    const end = busybox.indexOf(0, p);
    if (end === p || end < 0) break;
    names.push(busybox.subarray(p, end).toString('latin1'));
    p = end + 1;
  }
  if (names.length < 50 || names.some((n) => !/^[\w.[\]-]+$/.test(n))) throw new Error('busybox applet table unreadable');
  return names;
}

/** A root of unpacked packages in `dir`: `platform`'s binaries, read and never run. */
export function unpackedRoot(dir: string, platform: VmPlatform): GuestRoot {
  const { libraryDirs, debianPackages, busybox } = platform.initramfs;
  const findLib = (soname: string): string => {
    for (const d of libraryDirs) {
      const host = resolveIn(dir, join(d, soname));
      if (existsSync(host)) return host;
    }
    throw new Error(`${soname} is in none of ${libraryDirs.join(', ')} of the ${platform.architecture} packages (${dir})`);
  };
  return {
    file: (path) => resolveIn(dir, path),
    toolPath(name) {
      for (const d of ['/usr/bin', '/usr/sbin', '/bin', '/sbin']) {
        const host = resolveIn(dir, join(d, name));
        if (existsSync(host)) return host;
      }
      throw new Error(`${name} is not in the ${platform.architecture} packages ${debianPackages.join(', ')} (${dir})`);
    },
    sharedLibraries(binary) {
      const libs: SharedLibrary[] = [];
      const seen = new Set<string>();
      const visit = (elf: string): void => {
        const needs = elfNeeds(readFileSync(elf));
        // By name: libc names the loader again among its DT_NEEDED.
        const loader = needs.interpreter && basename(needs.interpreter);
        if (needs.interpreter && loader && !seen.has(loader)) {
          seen.add(loader);
          libs.push({ name: loader, path: resolveIn(dir, needs.interpreter) });
        }
        for (const soname of needs.needed) {
          if (seen.has(soname)) continue;
          seen.add(soname);
          const path = findLib(soname);
          libs.push({ name: soname, path });
          visit(path);
        }
      };
      visit(binary);
      return libs;
    },
    busyboxApplets: () => appletTable(readFileSync(resolveIn(dir, busybox))),
  };
}
