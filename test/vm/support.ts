/**
 * Helpers of the VM tests: GNU tar inputs made from directories created here (mknod whiteouts,
 * setfattr opaque dirs and capabilities), upper tars read back with tar-stream (PAX xattrs
 * included), and the QEMU processes a test's temp dir has.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import tar from 'tar-stream';
import type { VmJob } from '../../src/vm/vm-runner.ts';

export const CLOCK = 1_700_000_000;
/** security.capability for cap_net_bind_service+ep (VFS caps v2), as `setcap` writes it. */
export const CAP = Buffer.from('0100000200040000000000000000000000000000', 'hex');

export interface Entry {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  linkname: string;
  devmajor: number;
  devminor: number;
  xattrs: Map<string, Buffer>;
  data: Buffer;
}

export async function readTar(stream: Readable): Promise<Map<string, Entry>> {
  const extract = tar.extract();
  stream.pipe(extract as unknown as NodeJS.WritableStream);
  const entries = new Map<string, Entry>();
  for await (const entry of extract) {
    const h = entry.header;
    const chunks: Buffer[] = [];
    for await (const c of entry) chunks.push(c as Buffer);
    const xattrs = new Map<string, Buffer>();
    for (const [k, v] of Object.entries(h.pax ?? {})) {
      // tar-stream decodes PAX values as UTF-8 text; binary xattrs need the raw bytes.
      if (k.startsWith('SCHILY.xattr.')) xattrs.set(k.slice('SCHILY.xattr.'.length), Buffer.from(v, 'latin1'));
    }
    const name = h.name.replace(/^\.\//, '').replace(/\/$/, '') || '.';
    entries.set(name, {
      type: h.type ?? 'file',
      mode: h.mode ?? 0,
      uid: h.uid ?? 0,
      gid: h.gid ?? 0,
      linkname: h.linkname ?? '',
      devmajor: h.devmajor ?? 0,
      devminor: h.devminor ?? 0,
      xattrs,
      data: Buffer.concat(chunks),
    });
  }
  return entries;
}

export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

export function sh(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
}

/** GNU tar of `dir`'s children, xattrs and numeric owners kept. */
export function gnuTar(dir: string, out: string, members: string[]): void {
  sh('tar', ['--xattrs', '--xattrs-include=*', '--numeric-owner', '--format=posix', '-C', dir, '-cf', out, ...members]);
}

/** QEMU processes whose command line mentions `needle` (QEMU started for our temp dir), as `pid: cmdline`. */
export function processesMentioning(needle: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
      if (cmdline.includes('qemu-system') && cmdline.includes(needle)) found.push(`${pid}: ${cmdline.slice(0, 200)}`);
    } catch {
      /* gone */
    }
  }
  return found;
}

export function pidsOf(processes: string[]): number[] {
  return processes.map((p) => Number(p.slice(0, p.indexOf(':')))).sort((a, b) => a - b);
}

export function job(overrides: Partial<VmJob>): VmJob {
  return {
    lowerCount: 0,
    shadowSetup: false,
    clock: CLOCK,
    limits: { diskMiB: 64, memoryMiB: 256, timeoutSeconds: 60 },
    ...overrides,
  };
}

/**
 * The base image in overlay form, as a tar in `work`: layer 0 a small tree; layer 1 deletes
 * /etc/gone (a 0/0 char device) and makes /opq opaque (only its own child shows).
 */
export async function makeLowerTar(work: string): Promise<string> {
  const L = join(work, 'lower');
  for (const d of ['0/etc', '0/some/dir', '0/bin', '0/usr/bin', '0/opq', '0/home', '1/etc', '1/opq']) await mkdir(join(L, d), { recursive: true });
  await writeFile(join(L, '0/etc/a'), 'a\n');
  await writeFile(join(L, '0/etc/gone'), 'gone\n');
  await writeFile(join(L, '0/some/dir/x'), 'x\n');
  await writeFile(join(L, '0/some/dir/y'), 'y\n');
  await writeFile(join(L, '0/opq/from0'), '0\n');
  await writeFile(join(L, '0/usr/bin/tool'), '#!/bin/sh\n', { mode: 0o755 });
  await writeFile(join(L, '0/bin/prog'), 'prog\n', { mode: 0o755 });
  sh('setfattr', ['-n', 'security.capability', '-v', `0x${CAP.toString('hex')}`, join(L, '0/bin/prog')]);
  await writeFile(join(L, '1/opq/from1'), '1\n');
  sh('mknod', [join(L, '1/etc/gone'), 'c', '0', '0']);
  sh('setfattr', ['-n', 'trusted.overlay.opaque', '-v', 'y', join(L, '1/opq')]);
  const out = join(work, 'lower.tar');
  gnuTar(L, out, ['0', '1']);
  return out;
}

/** This build's contents, as a tar in `work`: a file with a capability, /etc/motd and a symlink to it. */
export async function makeUpperTar(work: string): Promise<string> {
  const U = join(work, 'upper');
  await mkdir(join(U, 'usr/local/bin'), { recursive: true });
  await mkdir(join(U, 'etc'), { recursive: true });
  await writeFile(join(U, 'etc/motd'), 'hi\n');
  await writeFile(join(U, 'usr/local/bin/capped'), 'capped\n', { mode: 0o755 });
  sh('setfattr', ['-n', 'security.capability', '-v', `0x${CAP.toString('hex')}`, join(U, 'usr/local/bin/capped')]);
  await symlink('motd', join(U, 'etc/motd.link'));
  const out = join(work, 'upper.tar');
  gnuTar(U, out, ['.']);
  return out;
}

/** A tmpfs of `mib` MiB mounted on `dir` (made here): a small filesystem for disk-room tests. Needs root. */
export async function mountTmpfs(dir: string, mib: number): Promise<void> {
  await mkdir(dir, { recursive: true });
  sh('mount', ['-t', 'tmpfs', '-o', `size=${mib}m`, 'tmpfs', dir]);
}

export function unmount(dir: string): void {
  spawnSync('umount', [dir]);
}

/** A file of `mib` MiB of real blocks in `dir` (not sparse): takes that much of its filesystem's room. */
export async function fillerFile(path: string, mib: number): Promise<void> {
  await writeFile(path, Buffer.alloc(mib * 1024 * 1024, 1));
}
