/**
 * What the arm64 rows of `bench/vm.ts` need on an amd64 host:
 *  - qemu-user for buildah's arm64 container: the binfmt_misc entry `qemu-aarch64`, from Debian's
 *    qemu-user-static (/usr/lib/binfmt.d/qemu-aarch64.conf, flags OPF: F opens the interpreter
 *    when registering, so runc's container, which has no qemu in it, runs arm64 binaries too).
 *    Registered here when missing (binfmt_misc mounted first when it is not): that is what
 *    binfmt-support/systemd-binfmt do at boot, and this machine runs neither;
 *  - an arm64 busybox-static, from Debian's .deb, downloaded with the private arm64 apt the VM
 *    assets use (src/vm/assets/apt.ts; its lists are shared with theirs).
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { aptGet, foreignApt } from '../../src/vm/assets/apt.ts';
import { sh } from '../../src/vm/assets/host-files.ts';
import { SYSTEM_PATH, run } from '../../test/support/run.ts';

const BINFMT = '/proc/sys/fs/binfmt_misc';
const ENTRY = join(BINFMT, 'qemu-aarch64');
const CONF = '/usr/lib/binfmt.d/qemu-aarch64.conf';

/** Whether arm64 binaries run under qemu-user here; `detail`: the entry, or why not. */
export interface QemuUser {
  ok: boolean;
  detail: string;
}

function entryText(): string | undefined {
  try {
    return readFileSync(ENTRY, 'utf8');
  } catch {
    return undefined;
  }
}

function describeEntry(text: string): string {
  const field = (name: string): string => new RegExp(`^${name}:? (.*)$`, 'm').exec(text)?.[1] ?? '?';
  return `binfmt_misc qemu-aarch64: interpreter ${field('interpreter')}, flags ${field('flags')}`;
}

/** Makes sure the qemu-aarch64 binfmt entry is registered and enabled (installing qemu-user-static when needed). */
export async function ensureQemuUserAarch64(): Promise<QemuUser> {
  const existing = entryText();
  if (existing?.startsWith('enabled')) return { ok: true, detail: describeEntry(existing) };
  if (existing) return { ok: false, detail: `${ENTRY} is there but disabled (not changed by the bench)` };
  try {
    if (!existsSync(CONF)) {
      process.stderr.write('bench:vm: installing qemu-user-static with apt-get\n');
      const env = { DEBIAN_FRONTEND: 'noninteractive', PATH: SYSTEM_PATH };
      const r = await run('apt-get', ['install', '-y', '--no-install-recommends', 'qemu-user-static'], { env, timeoutMs: 600_000 });
      if (r.code !== 0) return { ok: false, detail: `apt-get install qemu-user-static failed: ${r.stderr.trim()}` };
      if (!existsSync(CONF)) return { ok: false, detail: `qemu-user-static installed no ${CONF}` };
    }
    if (!existsSync(join(BINFMT, 'register'))) {
      const r = await run('mount', ['-t', 'binfmt_misc', 'binfmt_misc', BINFMT], { timeoutMs: 30_000 });
      if (r.code !== 0) return { ok: false, detail: `cannot mount binfmt_misc on ${BINFMT}: ${r.stderr.trim()}` };
    }
    const line = readFileSync(CONF, 'utf8')
      .split('\n')
      .find((l) => l.startsWith(':qemu-aarch64:'));
    if (!line) return { ok: false, detail: `${CONF} has no :qemu-aarch64: line` };
    await writeFile(join(BINFMT, 'register'), line);
    process.stderr.write(`bench:vm: registered qemu-aarch64 in ${BINFMT} from ${CONF}\n`);
  } catch (err) {
    return { ok: false, detail: `cannot register qemu-aarch64 with binfmt_misc: ${err instanceof Error ? err.message : String(err)}` };
  }
  const text = entryText();
  return text?.startsWith('enabled') ? { ok: true, detail: describeEntry(text) } : { ok: false, detail: `${ENTRY} missing after registering` };
}

/** The VM assets' cache (as src/vm/assets/vm-assets.ts finds it), where the private arm64 apt lives. */
function vmCacheDir(): string {
  const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
  return resolve(process.env.BALER_VM_CACHE || join(repoRoot, '.cache', 'vm'));
}

/** Debian's arm64 busybox-static's /bin/busybox, unpacked under `dir`; returns its path and the .deb's name. */
export async function arm64Busybox(dir: string): Promise<{ path: string; deb: string }> {
  const apt = await foreignApt(vmCacheDir(), 'arm64', (m) => process.stderr.write(`bench:vm: ${m}\n`));
  await mkdir(dir, { recursive: true });
  const work = await mkdtemp(join(dir, 'busybox-arm64-'));
  aptGet(apt, ['download', 'busybox-static'], work);
  const deb = (await readdir(work)).find((f) => f.endsWith('.deb'));
  if (!deb) throw new Error('apt-get download busybox-static (arm64) gave no .deb');
  const root = join(work, 'root');
  sh('dpkg-deb', ['-x', join(work, deb), root]);
  const path = join(root, 'bin', 'busybox');
  // ELF e_machine (offset 18, little-endian) 0xb7: AArch64.
  if (readFileSync(path).readUInt16LE(18) !== 0xb7) throw new Error(`${path} is not an arm64 binary`);
  await rm(join(work, deb));
  return { path, deb };
}
