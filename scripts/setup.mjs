#!/usr/bin/env node
// Installs what `npm start` / `npm test` need, idempotently: npm packages when node_modules is
// missing or stale, and Debian packages that are not installed yet. Plain Node, no
// dependencies, because it runs before `npm ci`.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const mode = process.argv[2] ?? 'runtime';

// The build VM (src/vm/): QEMU (x86 for linux/amd64 guests, arm for linux/arm64 ones), mksquashfs
// (-tar), mke2fs, setpriv (util-linux), and what the host's own guest initramfs is made of
// (busybox-static, bash-static, GNU tar, setcap/getcap, setfattr/getfattr). The kernel is not
// installed, nor are the other architecture's packages: src/vm/assets/ downloads them.
const VM = ['qemu-system-x86', 'qemu-system-arm', 'squashfs-tools', 'e2fsprogs', 'util-linux', 'busybox-static', 'bash-static', 'tar', 'libcap2-bin', 'attr', 'zstd'];
// Decompressors for uploaded contents, base archives and layers (src/image/sources/archive/
// decompressor-process.ts); xz-utils and bzip2 are on most Debian systems, but not promised.
const DECOMPRESSORS = ['zstd', 'xz-utils', 'bzip2'];

const PACKAGES = {
  runtime: ['redis-server', ...VM, ...DECOMPRESSORS],
  // Tools the tests check images with (we did not write them) and what they need to run; a
  // single-node Ceph RADOS Gateway, the S3 server the S3 store is tested against
  // (scripts/rgw/run-rgw.sh); chromium drives the dashboard's browser test (playwright-core);
  // curl and jq run the README's curl guide; python3-prometheus-client: the Prometheus
  // project's own text-format parser, for /metrics.
  test: [
    'redis-server',
    ...VM,
    ...DECOMPRESSORS,
    'skopeo',
    'umoci',
    'podman',
    'runc',
    'docker.io',
    'containerd',
    'uidmap',
    'docker-registry',
    'apache2-utils',
    'buildah',
    'ceph-mon',
    'ceph-osd',
    'radosgw',
    'ceph-common',
    'chromium',
    'curl',
    'jq',
    'python3-prometheus-client',
    // The multi-host test (test/cluster): network namespaces, veth pairs, a bridge, link cuts.
    'iproute2',
    'iptables',
    // The tar conformance corpus (test/conformance): tars written by bsdtar and Python's tarfile,
    // compressed with xz and bzip2 (GNU tar, busybox-static, attr, the decompressors, docker.io are above).
    'libarchive-tools',
    'python3',
    // A Debian root as users make them, used as contents (test/e2e/debian-root.test.ts;
    // scripts/debian-root.mjs caches it).
    'mmdebstrap',
    // Runs the arm64 images the tests build over their extracted root (test/e2e/arm64.test.ts,
    // test/e2e/multi-platform.test.ts).
    'qemu-user-static',
  ],
  // `npm run test:compose`: a private Docker engine, compose v1, debootstrap for the local base
  // images (no Docker Hub), curl and skopeo for the build through the stack. The VM is built
  // inside the worker image.
  compose: ['docker.io', 'containerd', 'runc', 'docker-compose', 'debootstrap', 'iptables', 'iproute2', 'curl', 'skopeo', 'tar'],
};

function log(message) {
  process.stderr.write(`[setup] ${message}\n`);
}

function npmPackages() {
  // A git worktree may link node_modules to the main checkout's: `npm ci` through the link
  // would empty that install for everyone using it while it reinstalls.
  const modules = join(root, 'node_modules');
  if (existsSync(modules) && lstatSync(modules).isSymbolicLink()) {
    log('node_modules is a link to another checkout; not reinstalling through it (run setup there)');
    return;
  }
  const marker = join(modules, '.package-lock.json');
  const lock = join(root, 'package-lock.json');
  if (existsSync(marker) && statSync(marker).mtimeMs >= statSync(lock).mtimeMs) return;
  log('installing npm packages (npm ci)');
  execFileSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' });
}

function installed(pkg) {
  // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's format, not a template
  const result = spawnSync('dpkg-query', ['-W', '-f=${Status}', pkg], { encoding: 'utf8' });
  return result.status === 0 && result.stdout.includes('install ok installed');
}

function debianPackages(wanted) {
  const missing = wanted.filter((pkg) => !installed(pkg));
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) {
    log(`missing Debian packages: ${missing.join(' ')}; run as root or: sudo apt-get install -y ${missing.join(' ')}`);
    process.exit(1);
  }
  log(`installing Debian packages: ${missing.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update', '-q'], { stdio: 'inherit', env });
  execFileSync('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...missing], { stdio: 'inherit', env });
}

npmPackages();
debianPackages([...new Set(PACKAGES[mode] ?? PACKAGES.runtime)]);
// The VM's kernel + initramfs, into the cache (fast when cached; first time: downloads the
// kernel package with apt-get). Needs apt's package lists: update them once if apt knows nothing.
// TypeScript (src/vm/assets/) through tsx: the npm packages are installed by now.
// Not for `compose`: the worker image builds its own.
// The tests boot linux/arm64 VMs too (test/vm/arm64-runner.test.ts): their assets as well.
if (mode !== 'compose') {
  const { ensureVmAssets, vmPlatform } = await import('./build-vm-assets.mjs');
  const platforms = mode === 'test' ? ['linux/amd64', 'linux/arm64'] : ['linux/amd64'];
  for (const platform of platforms.map(vmPlatform)) {
    try {
      await ensureVmAssets({ log, platform });
    } catch (err) {
      if (process.getuid?.() !== 0) throw err;
      log(`building the ${platform.name} VM assets failed (${err instanceof Error ? err.message : err}); retrying after apt-get update`);
      execFileSync('apt-get', ['update', '-q'], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
      await ensureVmAssets({ log, platform });
    }
  }
}
// The tests' Debian root (mmdebstrap, from apt's mirror), into the cache: ~1.5 min and 170 MB
// the first time, a stat afterwards. Without the mirror only its test fails (it tries again,
// and says why), not the whole run.
if (mode === 'test') {
  const { ensureDebianRoot } = await import('./debian-root.mjs');
  try {
    await ensureDebianRoot({ log });
  } catch (err) {
    log(`making the Debian root failed (${err instanceof Error ? err.message : err}); test/e2e/debian-root.test.ts will fail`);
  }
}
