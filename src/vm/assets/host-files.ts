/** What the asset build reads from the host: its tools and their libraries, by path and content hash. */
import { execFileSync, type ExecFileSyncOptions } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Runs a command to completion; its stdout. */
export function sh(cmd: string, args: readonly string[], opts: ExecFileSyncOptions = {}): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...opts }) as string;
}

/** Like sh, undefined when the command fails. */
export function trySh(cmd: string, args: readonly string[]): string | undefined {
  try {
    return sh(cmd, args);
  } catch {
    return undefined;
  }
}

/** Where a host tool is installed; `packages`: the Debian packages that install it and its kind, for the error. */
export function toolPath(name: string, packages: readonly string[]): string {
  for (const dir of ['/usr/bin', '/usr/sbin', '/bin', '/sbin']) {
    const p = join(dir, name);
    if (existsSync(p)) return p;
  }
  throw new Error(`${name} is not installed (scripts/setup.mjs installs it: ${packages.join(', ')})`);
}

/** Shared libraries of an ELF binary as ldd resolves them (absolute paths, the loader included). */
export function sharedLibraries(binary: string): string[] {
  const out = sh('ldd', [binary]);
  const libs: string[] = [];
  for (const line of out.split('\n')) {
    const m = line.match(/=>\s*(\/\S+)/) ?? line.match(/^\s*(\/\S+)\s+\(/);
    if (m?.[1]) libs.push(m[1]);
  }
  return libs;
}

/** A file's content hash (for the cache key; a few MiB in all, milliseconds). */
export async function fileIdentity(path: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(path))
    .digest('hex');
}
