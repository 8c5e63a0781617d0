#!/usr/bin/env node
// Builds the QEMU microVM's kernel and initramfs from Debian packages into a cache directory,
// idempotently: `ensureVmAssets()` returns at once when the cache already holds assets for the
// current inputs, and rebuilds when any input changed (kernel package version, busybox-static,
// GNU tar and its libraries, the guest's files under src/vm/guest/, this script's format).
//
//   kernel:    `vmlinux` extracted from the bzImage of Debian's linux-image-cloud-amd64
//              (`apt-get download` + `dpkg-deb -x`, nothing installed); QEMU boots it via PVH.
//   initramfs: busybox-static, bash-static (the scripts' shell), GNU tar, setcap/getcap,
//              setfattr/getfattr + the shared libraries ldd names, the kernel modules the
//              guest needs (virtio_mmio, virtio_blk, overlay, squashfs + deps, in insmod order),
//              and src/vm/guest/init as /init. A newc cpio written here (no root needed),
//              uncompressed (faster to boot under TCG than a gzip'd one).
//
// Plain Node, no dependencies: it runs from scripts/setup.mjs too. Usage:
//   node scripts/build-vm-assets.mjs            # ensure; prints the asset directory
//   node scripts/build-vm-assets.mjs --force    # rebuild even when cached
// Environment: BALER_VM_CACHE (default <repo>/.cache/vm), BALER_VM_KERNEL_PACKAGE (default
// linux-image-cloud-amd64).
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const guestDir = join(root, 'src', 'vm', 'guest');

/** Bump when the layout or contents of the assets change in a way the other inputs do not show. */
const FORMAT = 5;
/** Modules the guest loads (ext4 and crc32c are built into the cloud kernel). */
const WANTED_MODULES = ['virtio_mmio', 'virtio_blk', 'overlay', 'squashfs'];
/**
 * Dynamically linked host tools shipped in /baler/libexec with their libraries in /baler/lib.
 * They run through the loader by its path (`ld.so --library-path`), so they work inside any
 * chroot, even an image without a libc. `wrap`: a wrapper of that name goes in /baler/bin
 * (the scripts' /.baler/bin): busybox has no setcap/getcap/setfattr/getfattr. GNU tar is for
 * /init only (busybox tar drops xattrs); the scripts get busybox tar unless the image has one.
 */
const GUEST_TOOLS = [
  { name: 'tar', wrap: false },
  { name: 'setcap', wrap: true },
  { name: 'getcap', wrap: true },
  { name: 'setfattr', wrap: true },
  { name: 'getfattr', wrap: true },
];

function toolPath(name) {
  for (const dir of ['/usr/bin', '/usr/sbin', '/bin', '/sbin']) {
    const p = join(dir, name);
    if (existsSync(p)) return p;
  }
  throw new Error(`${name} is not installed (scripts/setup.mjs installs it: tar, libcap2-bin, attr)`);
}
const BUSYBOX = '/bin/busybox';
/** The scripts' shell: a static bash, so PATH decides which tools run (busybox's sh would
 *  run its own applets before the image's programs: Debian builds it with SH_STANDALONE). */
const BASH = '/bin/bash-static';

function log(options, message) {
  (options.log ?? ((m) => process.stderr.write(`[vm-assets] ${m}\n`)))(message);
}

export function defaultCacheDir(env = process.env) {
  return resolve(env.BALER_VM_CACHE || join(root, '.cache', 'vm'));
}

function sh(cmd, args, opts = {}) {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...opts });
}

function trySh(cmd, args) {
  try {
    return sh(cmd, args);
  } catch {
    return undefined;
  }
}

/** A fingerprint of apt's package lists: when it is unchanged, so is every candidate version. */
async function aptListsFingerprint() {
  const dir = '/var/lib/apt/lists';
  const h = createHash('sha256');
  try {
    for (const name of (await readdir(dir)).sort()) {
      if (!name.endsWith('_Packages') && !name.endsWith('_Packages.lz4') && !name.endsWith('_Packages.gz')) continue;
      const st = await stat(join(dir, name));
      h.update(`${name} ${st.size} ${st.mtimeMs}\n`);
    }
  } catch {
    return undefined;
  }
  return h.digest('hex');
}

/**
 * The concrete kernel image package the meta package points at, with its candidate version.
 * apt-cache takes about a second, so the answer is remembered beside the cache for as long
 * as apt's package lists stay the same.
 */
async function resolveKernelPackage(cacheDir, meta) {
  const memo = join(cacheDir, 'kernel-package.json');
  const lists = await aptListsFingerprint();
  if (lists) {
    try {
      const saved = JSON.parse(await readFile(memo, 'utf8'));
      if (saved.meta === meta && saved.lists === lists && saved.pkg && saved.version) return { pkg: saved.pkg, version: saved.version };
    } catch {
      /* none yet */
    }
  }
  const depends = trySh('apt-cache', ['depends', '--no-recommends', '--no-suggests', meta]);
  const dep = depends?.match(/Depends:\s*(linux-image-[^\s<>]+)/)?.[1];
  const pkg = dep ?? meta;
  const policy = trySh('apt-cache', ['policy', pkg]);
  const version = policy?.match(/Candidate:\s*(\S+)/)?.[1];
  if (!version || version === '(none)') return undefined;
  if (lists) await writeFile(memo, JSON.stringify({ meta, lists, pkg, version }) + '\n');
  return { pkg, version };
}

/** A file's content hash (for the cache key; a few MiB in all, milliseconds). */
async function fileIdentity(path) {
  return createHash('sha256').update(await readFile(path)).digest('hex');
}

/** Shared libraries of an ELF binary as ldd resolves them (absolute paths, the loader included). */
function sharedLibraries(binary) {
  const out = sh('ldd', [binary]);
  const libs = [];
  for (const line of out.split('\n')) {
    const m = line.match(/=>\s*(\/\S+)/) ?? line.match(/^\s*(\/\S+)\s+\(/);
    if (m?.[1]) libs.push(m[1]);
  }
  return libs;
}

async function guestFiles() {
  const names = (await readdir(guestDir)).sort();
  const files = [];
  for (const name of names) files.push({ name, data: await readFile(join(guestDir, name)) });
  return files;
}

async function computeKey(kernel, guest) {
  const h = createHash('sha256');
  h.update(`format ${FORMAT}\nkernel ${kernel.pkg}=${kernel.version}\n`);
  h.update(`busybox ${await fileIdentity(BUSYBOX)}\n`);
  h.update(`bash ${await fileIdentity(BASH)}\n`);
  for (const tool of GUEST_TOOLS) {
    const bin = toolPath(tool.name);
    h.update(`tool ${tool.name} ${tool.wrap} ${bin} ${await fileIdentity(bin)}\n`);
    for (const lib of sharedLibraries(bin)) h.update(`lib ${lib} ${await fileIdentity(lib)}\n`);
  }
  for (const f of guest) h.update(`guest ${f.name} ${createHash('sha256').update(f.data).digest('hex')}\n`);
  h.update(`modules ${WANTED_MODULES.join(',')}\n`);
  return h.digest('hex').slice(0, 16);
}

// ---------------------------------------------------------------- vmlinux from bzImage

/** Decodes the LZ4 legacy frame format the kernel's `lz4 -l` writes. */
function lz4LegacyDecode(buf) {
  const MAGIC = 0x184c2102;
  if (buf.readUInt32LE(0) !== MAGIC) throw new Error('not an LZ4 legacy frame');
  const chunks = [];
  let pos = 4;
  const MAX_BLOCK = 8 << 20;
  while (pos + 4 <= buf.length) {
    const size = buf.readUInt32LE(pos);
    if (size === MAGIC) {
      pos += 4;
      continue;
    }
    if (size === 0 || pos + 4 + size > buf.length) break; // trailing size_append or padding
    const block = buf.subarray(pos + 4, pos + 4 + size);
    pos += 4 + size;
    const out = Buffer.allocUnsafe(MAX_BLOCK);
    let o = 0;
    let i = 0;
    while (i < block.length) {
      const token = block[i++];
      let lit = token >> 4;
      if (lit === 15) {
        let b;
        do {
          b = block[i++];
          lit += b;
        } while (b === 255);
      }
      block.copy(out, o, i, i + lit);
      o += lit;
      i += lit;
      if (i >= block.length) break; // last sequence has literals only
      const offset = block[i] | (block[i + 1] << 8);
      i += 2;
      if (offset === 0 || offset > o) throw new Error('corrupt LZ4 block');
      let len = token & 15;
      if (len === 15) {
        let b;
        do {
          b = block[i++];
          len += b;
        } while (b === 255);
      }
      len += 4;
      for (let k = 0; k < len; k++, o++) out[o] = out[o - offset];
    }
    chunks.push(out.subarray(0, o));
  }
  return Buffer.concat(chunks);
}

/** Uncompressed ELF vmlinux from a bzImage: the payload the setup header points at, decompressed. */
export function extractVmlinux(bzImage) {
  if (bzImage.readUInt32LE(0x202) !== 0x53726448) throw new Error('not a bzImage (no HdrS)');
  const setupSects = bzImage[0x1f1] || 4;
  const payloadOffset = bzImage.readUInt32LE(0x248);
  const payloadLength = bzImage.readUInt32LE(0x24c);
  const start = (setupSects + 1) * 512 + payloadOffset;
  const payload = bzImage.subarray(start, start + payloadLength);
  const magic = payload.subarray(0, 6).toString('hex');
  let elf;
  if (magic.startsWith('02214c18')) elf = lz4LegacyDecode(payload);
  else if (magic.startsWith('1f8b')) elf = gunzipSync(payload);
  else {
    const tools = { fd377a585a00: ['xz', '-dc'], '28b52ffd': ['zstd', '-dc'], '894c5a': ['lzop', '-dc'], '425a68': ['bzip2', '-dc'], '5d0000': ['unlzma', '-c'] };
    const hit = Object.entries(tools).find(([m]) => magic.startsWith(m));
    if (!hit) throw new Error(`unknown kernel payload compression (magic ${magic})`);
    // Trailing bytes (the appended size) make some decompressors complain; the output is still whole.
    try {
      elf = execFileSync(hit[1][0], hit[1].slice(1), { input: payload, maxBuffer: 1 << 30 });
    } catch (err) {
      if (err.stdout?.length) elf = err.stdout;
      else throw err;
    }
  }
  if (elf.readUInt32BE(0) !== 0x7f454c46) throw new Error('decompressed kernel payload is not an ELF image');
  return elf;
}

// ---------------------------------------------------------------- modules

/** `depends=` of a .ko's .modinfo section. */
function moduleDepends(ko) {
  const text = ko.toString('latin1');
  const at = text.indexOf('\0depends=');
  if (at < 0) return [];
  const end = text.indexOf('\0', at + 1);
  return text.slice(at + 9, end).split(',').filter(Boolean);
}

async function indexModules(dir) {
  const index = new Map();
  async function walk(d) {
    for (const entry of await readdir(d, { withFileTypes: true })) {
      const p = join(d, entry.name);
      if (entry.isDirectory()) await walk(p);
      else if (entry.name.endsWith('.ko')) index.set(entry.name.slice(0, -3).replaceAll('-', '_'), p);
    }
  }
  await walk(dir);
  return index;
}

/** The wanted modules and their dependencies, dependencies first. */
async function moduleLoadOrder(modulesDir, wanted) {
  const index = await indexModules(modulesDir);
  const order = [];
  const state = new Map();
  async function visit(name) {
    const n = name.replaceAll('-', '_');
    if (state.get(n) === 'done') return;
    if (state.get(n) === 'visiting') throw new Error(`module dependency cycle at ${n}`);
    const path = index.get(n);
    if (!path) throw new Error(`module ${n} not found in the kernel package (is it built in?)`);
    state.set(n, 'visiting');
    const data = await readFile(path);
    for (const dep of moduleDepends(data)) await visit(dep);
    state.set(n, 'done');
    order.push({ name: n, data });
  }
  for (const w of wanted) await visit(w);
  return order;
}

// ---------------------------------------------------------------- cpio (newc)

class Cpio {
  constructor() {
    this.parts = [];
    this.ino = 1;
    this.names = new Set();
  }
  #header(name, mode, size, { rdevMajor = 0, rdevMinor = 0, nlink = 1 } = {}) {
    const fields = [this.ino++, mode, 0, 0, nlink, 0, size, 0, 0, rdevMajor, rdevMinor, Buffer.byteLength(name) + 1, 0];
    const hdr = '070701' + fields.map((v) => v.toString(16).padStart(8, '0')).join('');
    const head = Buffer.from(hdr + name + '\0', 'latin1');
    this.parts.push(head, Buffer.alloc((4 - (head.length % 4)) % 4));
  }
  #data(buf) {
    this.parts.push(buf, Buffer.alloc((4 - (buf.length % 4)) % 4));
  }
  #parents(name) {
    const parts = name.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (!this.names.has(dir)) this.dir(dir);
    }
  }
  dir(name, mode = 0o755) {
    this.#parents(name);
    this.names.add(name);
    this.#header(name, 0o040000 | mode, 0, { nlink: 2 });
  }
  file(name, data, mode = 0o644) {
    this.#parents(name);
    this.names.add(name);
    this.#header(name, 0o100000 | mode, data.length);
    this.#data(data);
  }
  symlink(name, target) {
    this.#parents(name);
    this.names.add(name);
    const t = Buffer.from(target);
    this.#header(name, 0o120777, t.length);
    this.#data(t);
  }
  chardev(name, major, minor, mode = 0o600) {
    this.#parents(name);
    this.names.add(name);
    this.#header(name, 0o020000 | mode, 0, { rdevMajor: major, rdevMinor: minor });
  }
  finish() {
    this.#header('TRAILER!!!', 0, 0);
    const body = Buffer.concat(this.parts);
    return Buffer.concat([body, Buffer.alloc((512 - (body.length % 512)) % 512)]);
  }
}

// ---------------------------------------------------------------- build

async function downloadKernel(cacheDir, kernel, options) {
  const downloads = join(cacheDir, 'downloads');
  await mkdir(downloads, { recursive: true });
  const existing = (await readdir(downloads)).find(
    (f) => f.startsWith(`${kernel.pkg}_`) && f.endsWith('.deb') && f.includes(kernel.version.replace(/^\d+:/, '').replaceAll(':', '%3a')),
  );
  if (existing) return join(downloads, existing);
  log(options, `downloading ${kernel.pkg}=${kernel.version}`);
  // apt-get download writes into the cwd; as root it warns that _apt cannot write there.
  sh('apt-get', ['download', '-q', `${kernel.pkg}=${kernel.version}`], { cwd: downloads });
  const deb = (await readdir(downloads)).find((f) => f.startsWith(`${kernel.pkg}_`) && f.endsWith('.deb'));
  if (!deb) throw new Error(`apt-get download ${kernel.pkg} produced no .deb`);
  // Keep only the newest download of each package.
  for (const f of await readdir(downloads)) if (f !== deb && f.startsWith(`${kernel.pkg}_`)) await rm(join(downloads, f), { force: true });
  return join(downloads, deb);
}

async function buildAssets(cacheDir, key, kernel, guest, options) {
  const work = join(cacheDir, `.build-${key}-${randomBytes(4).toString('hex')}`);
  await mkdir(work, { recursive: true });
  try {
    const deb = await downloadKernel(cacheDir, kernel, options);
    const x = join(work, 'deb');
    sh('dpkg-deb', ['-x', deb, x]);
    const boot = join(x, 'boot');
    const vmlinuz = (await readdir(boot)).find((f) => f.startsWith('vmlinuz-'));
    if (!vmlinuz) throw new Error(`${deb} holds no /boot/vmlinuz-*`);
    const release = vmlinuz.slice('vmlinuz-'.length);
    const vmlinux = extractVmlinux(await readFile(join(boot, vmlinuz)));
    const modules = await moduleLoadOrder(join(x, 'lib', 'modules', release), WANTED_MODULES);

    const cpio = new Cpio();
    for (const d of ['dev', 'proc', 'sys', 'tmp', 'run', 'mnt', 'etc', 'root']) cpio.dir(d);
    cpio.chardev('dev/console', 5, 1);
    cpio.chardev('dev/null', 1, 3, 0o666);
    // What the scripts see at /.baler/bin (bind-mounted): busybox with relative applet links,
    // so it works inside any chroot whatever the image holds, and bash. The guest's own /bin
    // is the same directory.
    const applets = sh(BUSYBOX, ['--list']).split('\n').filter(Boolean);
    cpio.file('baler/bin/busybox', await readFile(BUSYBOX), 0o755);
    const wrapped = new Set(GUEST_TOOLS.filter((t) => t.wrap).map((t) => t.name));
    for (const a of applets) if (a !== 'busybox' && a !== 'bash' && !wrapped.has(a)) cpio.symlink(`baler/bin/${a}`, 'busybox');
    cpio.file('baler/bin/bash', await readFile(BASH), 0o755);
    cpio.symlink('bin', 'baler/bin');
    cpio.symlink('sbin', 'baler/bin');
    cpio.dir('baler/run');
    // /.baler -> baler, so the wrappers' paths hold in the guest (extraCommands) as in a chroot.
    cpio.symlink('.baler', 'baler');
    cpio.dir('baler/lib');
    cpio.dir('baler/libexec');
    for (const tool of GUEST_TOOLS) {
      const bin = toolPath(tool.name);
      cpio.file(`baler/libexec/${tool.name}`, await readFile(bin), 0o755);
      for (const lib of sharedLibraries(bin)) {
        const isLoader = /\/ld-linux[^/]*\.so/.test(lib);
        const rel = `baler/lib/${isLoader ? 'ld.so' : basename(lib)}`;
        if (!cpio.names.has(rel)) cpio.file(rel, await readFile(lib), 0o755);
      }
      if (tool.wrap) {
        const wrapper = `#!/.baler/bin/sh\nexec /.baler/lib/ld.so --library-path /.baler/lib /.baler/libexec/${tool.name} "$@"\n`;
        cpio.file(`baler/bin/${tool.name}`, Buffer.from(wrapper), 0o755);
      }
    }
    const order = [];
    for (const m of modules) {
      cpio.file(`lib/modules/${m.name}.ko`, m.data, 0o644);
      order.push(m.name);
    }
    cpio.file('lib/modules/load-order', Buffer.from(order.join('\n') + '\n'));
    for (const f of guest) cpio.file(f.name === 'init' ? 'init' : `etc/baler/${f.name}`, f.data, f.name === 'init' ? 0o755 : 0o644);
    cpio.file('etc/baler/assets-version', Buffer.from(`${key}\n`));
    // Uncompressed: under TCG, gunzipping ~10 MiB at boot costs more (~0.15 s) than QEMU reading it.
    const initrd = cpio.finish();

    const out = join(work, 'out');
    await mkdir(out);
    await writeFile(join(out, 'vmlinux'), vmlinux);
    await writeFile(join(out, 'initrd.cpio'), initrd);
    const manifest = {
      key,
      format: FORMAT,
      kernelPackage: kernel.pkg,
      kernelVersion: kernel.version,
      kernelRelease: release,
      modules: order,
      builtAt: new Date().toISOString(),
    };
    await writeFile(join(out, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
    const final = join(cacheDir, key);
    try {
      await rename(out, final);
    } catch (err) {
      // Another process built the same key meanwhile: theirs is as good as ours.
      if (!existsSync(join(final, 'manifest.json'))) throw err;
    }
    return final;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function newestCached(cacheDir) {
  if (!existsSync(cacheDir)) return undefined;
  let best;
  for (const name of await readdir(cacheDir)) {
    const manifest = join(cacheDir, name, 'manifest.json');
    if (!/^[0-9a-f]{16}$/.test(name) || !existsSync(manifest)) continue;
    const m = (await stat(manifest)).mtimeMs;
    if (!best || m > best.m) best = { dir: join(cacheDir, name), m };
  }
  return best?.dir;
}

async function prune(cacheDir, keep) {
  const dirs = [];
  for (const name of await readdir(cacheDir)) {
    if (!/^[0-9a-f]{16}$/.test(name)) continue;
    const manifest = join(cacheDir, name, 'manifest.json');
    const m = existsSync(manifest) ? (await stat(manifest)).mtimeMs : 0;
    dirs.push({ name, m });
  }
  dirs.sort((a, b) => b.m - a.m);
  for (const d of dirs.slice(3)) if (d.name !== keep) await rm(join(cacheDir, d.name), { recursive: true, force: true });
}

function assetsOf(dir) {
  return {
    dir,
    kernel: join(dir, 'vmlinux'),
    initrd: join(dir, 'initrd.cpio'),
    manifest: join(dir, 'manifest.json'),
  };
}

/**
 * Ensures the kernel and initramfs for the current inputs exist in the cache and returns their
 * paths. Fast when cached (a few dpkg/apt-cache queries and hashes). When apt knows no kernel
 * candidate (no package lists), the newest cached assets are used.
 */
export async function ensureVmAssets(options = {}) {
  const cacheDir = resolve(options.cacheDir ?? defaultCacheDir());
  const meta = options.kernelPackage ?? process.env.BALER_VM_KERNEL_PACKAGE ?? 'linux-image-cloud-amd64';
  await mkdir(cacheDir, { recursive: true });
  const kernel = await resolveKernelPackage(cacheDir, meta);
  if (!kernel) {
    const cached = await newestCached(cacheDir);
    if (cached) return assetsOf(cached);
    throw new Error(`apt knows no candidate for ${meta} (run apt-get update) and nothing is cached in ${cacheDir}`);
  }
  const guest = await guestFiles();
  const key = await computeKey(kernel, guest);
  const dir = join(cacheDir, key);
  if (!options.force && existsSync(join(dir, 'manifest.json'))) return assetsOf(dir);
  if (options.force) await rm(dir, { recursive: true, force: true });
  log(options, `building VM assets ${key} (${kernel.pkg} ${kernel.version}) in ${cacheDir}`);
  const t0 = Date.now();
  const built = await buildAssets(cacheDir, key, kernel, guest, options);
  await prune(cacheDir, key);
  log(options, `VM assets ready in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${built}`);
  return assetsOf(built);
}

// Run as a script.
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  ensureVmAssets({ force: process.argv.includes('--force') })
    .then((a) => process.stdout.write(`${a.dir}\n`))
    .catch((err) => {
      process.stderr.write(`[vm-assets] ${err instanceof Error ? err.stack : String(err)}\n`);
      process.exit(1);
    });
}
