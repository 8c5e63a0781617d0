#!/usr/bin/env node
// A Debian root filesystem as mmdebstrap writes it (`mmdebstrap --variant=minbase bookworm
// root.tar MIRROR`), cached for the tests that use it as contents (test/e2e/debian-root.test.ts):
// `ensureDebianRoot()` returns at once when the cache holds a root for the current inputs and
// makes one otherwise (about 70 s and 170 MB from the mirror; nothing else touches the network).
//
// The tar is kept exactly as mmdebstrap writes it (GNU format, /dev nodes included): the point
// is to use what users have. The cache key is what decides the result: mmdebstrap's version,
// suite, variant, architecture, mirror URL, SOURCE_DATE_EPOCH and this script's format. The
// mirror's contents are not in the key (knowing them would take the network on every run): a
// root stays cached across point releases; `--force` (or deleting the directory) makes it anew.
//
// The mirror is the one apt on this machine uses for the suite (/etc/apt/sources.list and
// sources.list.d, one-line and deb822 forms), so the tests reach no other host.
//
// Plain Node, no dependencies: it runs from scripts/setup.mjs too. Usage:
//   node scripts/debian-root.mjs            # ensure; prints the tar's path
//   node scripts/debian-root.mjs --force    # make it again even when cached
// Environment: BALER_DEBIAN_ROOT_CACHE (default <repo>/.cache/debian-root), BALER_DEBIAN_MIRROR
// (default: apt's mirror for the suite).
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Bump when the way the root is made changes in a way the other inputs do not show. */
const FORMAT = 1;
const SUITE = 'bookworm';
const VARIANT = 'minbase';
/** Fixed, so two makes from the same mirror state give the same tar (mmdebstrap honours it). */
const SOURCE_DATE_EPOCH = '0';

function log(options, message) {
  (options.log ?? ((m) => process.stderr.write(`[debian-root] ${m}\n`)))(message);
}

export function defaultCacheDir(env = process.env) {
  return resolve(env.BALER_DEBIAN_ROOT_CACHE || join(root, '.cache', 'debian-root'));
}

/** apt's source files, in the order apt reads them (only the names apt itself reads). */
function aptSourceFiles() {
  const files = [];
  if (existsSync('/etc/apt/sources.list')) files.push({ path: '/etc/apt/sources.list', deb822: false });
  const dir = '/etc/apt/sources.list.d';
  if (existsSync(dir)) {
    for (const name of readdirSync(dir).sort()) {
      if (name.endsWith('.list')) files.push({ path: join(dir, name), deb822: false });
      else if (name.endsWith('.sources')) files.push({ path: join(dir, name), deb822: true });
    }
  }
  return files;
}

/** The first `deb` URI apt has for exactly this suite; undefined when there is none. */
export function aptMirror(suite = SUITE) {
  for (const file of aptSourceFiles()) {
    const text = readFileSync(file.path, 'utf8');
    if (file.deb822) {
      for (const stanza of text.split(/\n\s*\n/)) {
        const fields = {};
        let last;
        for (const line of stanza.split('\n')) {
          if (/^\s*#/.test(line)) continue;
          const m = line.match(/^([A-Za-z0-9-]+):\s*(.*)$/);
          if (m) fields[(last = m[1].toLowerCase())] = m[2];
          else if (last && /^\s/.test(line)) fields[last] += ` ${line.trim()}`;
        }
        const words = (k) => (fields[k] ?? '').split(/\s+/).filter(Boolean);
        if (fields.enabled?.trim() === 'no') continue;
        if (words('types').includes('deb') && words('suites').includes(suite) && words('uris')[0]) return words('uris')[0];
      }
    } else {
      for (const line of text.split('\n')) {
        // deb [options] uri suite components...
        const m = line
          .replace(/#.*/, '')
          .trim()
          .match(/^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)/);
        if (m && m[2] === suite) return m[1];
      }
    }
  }
  return undefined;
}

function mmdebstrapVersion() {
  // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's format, not a template
  const r = spawnSync('dpkg-query', ['-W', '-f=${Version}', 'mmdebstrap'], { encoding: 'utf8' });
  if (r.status !== 0 || !r.stdout) throw new Error('mmdebstrap is not installed (scripts/setup.mjs test installs it)');
  return r.stdout.trim();
}

function inputs(options) {
  const mirror = options.mirror ?? process.env.BALER_DEBIAN_MIRROR ?? aptMirror(SUITE);
  if (!mirror) throw new Error(`apt has no 'deb' source for ${SUITE} (/etc/apt/sources.list*) and BALER_DEBIAN_MIRROR is unset`);
  const arch = execFileSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).trim();
  return { format: FORMAT, mmdebstrap: mmdebstrapVersion(), suite: SUITE, variant: VARIANT, arch, mirror, sourceDateEpoch: SOURCE_DATE_EPOCH };
}

function keyOf(inp) {
  return createHash('sha256').update(JSON.stringify(inp)).digest('hex').slice(0, 16);
}

function resultOf(dir) {
  return { dir, tar: join(dir, 'root.tar'), manifest: join(dir, 'manifest.json') };
}

async function prune(cacheDir, keep) {
  for (const name of await readdir(cacheDir)) {
    if (name !== keep && (/^[0-9a-f]{16}$/.test(name) || name.startsWith('.make-'))) {
      const full = join(cacheDir, name);
      // A `.make-` directory younger than an hour may be another process's make in progress.
      if (name.startsWith('.make-') && Date.now() - (await stat(full)).mtimeMs < 3600_000) continue;
      await rm(full, { recursive: true, force: true });
    }
  }
}

/**
 * Ensures the cache holds the root for the current inputs and returns its paths. Fast when
 * cached (two dpkg queries and a stat); otherwise runs mmdebstrap (needs the mirror).
 */
export async function ensureDebianRoot(options = {}) {
  const cacheDir = resolve(options.cacheDir ?? defaultCacheDir());
  const inp = inputs(options);
  const key = keyOf(inp);
  const dir = join(cacheDir, key);
  if (!options.force && existsSync(join(dir, 'manifest.json'))) return resultOf(dir);
  await mkdir(cacheDir, { recursive: true });
  log(options, `making a Debian root (mmdebstrap ${inp.mmdebstrap}, --variant=${VARIANT} ${SUITE} ${inp.mirror}) into ${dir}`);
  const work = join(cacheDir, `.make-${key}-${randomBytes(4).toString('hex')}`);
  await mkdir(work);
  try {
    const tar = join(work, 'root.tar');
    const t0 = Date.now();
    const r = spawnSync('mmdebstrap', ['--quiet', `--variant=${VARIANT}`, `--architectures=${inp.arch}`, SUITE, tar, inp.mirror], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      // mmdebstrap's own temp dir (the chroot it mounts /proc and /sys in) stays in $TMPDIR:
      // never under this directory, which is removed recursively.
      env: { ...process.env, SOURCE_DATE_EPOCH },
      maxBuffer: 64 << 20,
    });
    if (r.status !== 0) throw new Error(`mmdebstrap failed (exit ${r.status ?? r.signal}):\n${(r.stderr ?? '').split('\n').slice(-30).join('\n')}`);
    const seconds = (Date.now() - t0) / 1000;
    const size = (await stat(tar)).size;
    await writeFile(join(work, 'manifest.json'), JSON.stringify({ key, ...inp, seconds, size, madeAt: new Date().toISOString() }, null, 2) + '\n');
    if (options.force) await rm(dir, { recursive: true, force: true });
    await mkdir(join(work, 'out'));
    await rename(tar, join(work, 'out', 'root.tar'));
    await rename(join(work, 'manifest.json'), join(work, 'out', 'manifest.json'));
    try {
      await rename(join(work, 'out'), dir);
    } catch (err) {
      // Another process made the same key meanwhile: theirs is as good as ours.
      if (!existsSync(join(dir, 'manifest.json'))) throw err;
    }
    log(options, `Debian root ready in ${seconds.toFixed(1)} s (${(size / 2 ** 20).toFixed(0)} MiB): ${join(dir, 'root.tar')}`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  await prune(cacheDir, key);
  return resultOf(dir);
}

// Run as a script.
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  ensureDebianRoot({ force: process.argv.includes('--force') })
    .then((r) => process.stdout.write(`${r.tar}\n`))
    .catch((err) => {
      process.stderr.write(`[debian-root] ${err instanceof Error ? err.stack : String(err)}\n`);
      process.exit(1);
    });
}
