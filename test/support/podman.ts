/**
 * A private, throw-away rootful podman for integration tests (podman 4.3 / Debian 12).
 *
 * All state lives under one fresh temp dir: storage (vfs) graph root + run
 * root, libpod tmpdir (file locks instead of /dev/shm locks), events log
 * (file backend), CNI network config dir, runc state dir, and the image
 * blob-info cache. Config is passed both as global flags and via private
 * CONTAINERS_CONF / CONTAINERS_STORAGE_CONF / CONTAINERS_REGISTRIES_CONF files,
 * because podman's conmon exit command (`podman container cleanup`) only
 * receives some of the global flags but does inherit CONTAINERS_CONF.
 *
 * Findings that shaped this (see test/harness.smoke.test.ts):
 *  - `--runtime runc` resolves (via [engine.runtimes] in the private
 *    containers.conf) to a wrapper `exec /usr/sbin/runc --root <tmp>/runc-state "$@"`.
 *    `--runtime-flag root=...` is NOT enough: the exit command drops it, so
 *    cleanup runs `runc delete` against /run/runc and leaks cgroups + state.
 *  - `--cgroups=disabled` is refused with runc; instead containers go into a
 *    random *relative* --cgroup-parent (below the test process's own cgroup)
 *    and conmon stays in ours (`cgroups = "no-conmon"`), so cleanup() can
 *    rmdir exactly what was created (default cgroupfs parent is /libpod_parent).
 *  - image copies (load/save/import/pull/push/commit) always open
 *    /var/lib/containers/cache/blob-info-cache-v1.boltdb when euid is 0; the
 *    only knob is containers/image's `_CONTAINERS_ROOTLESS_UID` (+ XDG_DATA_HOME),
 *    which we set for those commands only (podman still runs rootful).
 *  - the netavark backend hard-codes /run/containers/networks and
 *    /etc/containers/networks; the CNI backend with a private
 *    network_config_dir touches nothing outside (and we only use --network none).
 */
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { SYSTEM_PATH, harnessTmpBase, pidsInCgroup, pidsMentioning, removeCgroup, run, terminate, unmountUnder, withContainerDefaults, type ContainerDefault, type RunResult } from './run.ts';

export const PODMAN_BIN = '/usr/bin/podman';
const RUNC_BIN = '/usr/sbin/runc';

export interface PodmanOptions {
  input?: string;
  timeoutMs?: number;
}

export interface Podman {
  /** The temp dir holding all podman state. */
  readonly root: string;
  /**
   * Run `podman <private global flags> ...args`. For `run`/`create` these are inserted unless
   * the caller passed them: `--network none --pull never --ulimit nofile=1024:1024
   * --ulimit nproc=4096:4096 --cgroup-parent <private>`.
   */
  podman(args: string[], opts?: PodmanOptions): Promise<RunResult>;
  /** Remove containers, kill leftovers (conmon, runc, container processes), unmount, remove cgroups + temp root. Idempotent. */
  cleanup(): Promise<void>;
}

/** true if this machine can run the private podman harness (root + podman + conmon + runc). */
export function podmanAvailable(): boolean {
  return process.platform === 'linux' && process.getuid?.() === 0 && existsSync(PODMAN_BIN) && existsSync('/usr/bin/conmon') && existsSync(RUNC_BIN);
}

/** Subcommands that copy images and would otherwise open /var/lib/containers/cache. */
const IMAGE_COPY_COMMANDS = new Set(['load', 'save', 'import', 'pull', 'push', 'commit', 'image', 'manifest']);

export async function startPodman(): Promise<Podman> {
  if (!podmanAvailable()) throw new Error('podman harness unavailable (needs root, podman, conmon, runc)');

  const root = await mkdtemp(join(harnessTmpBase(), 'baler-podman-'));
  const d = {
    graph: join(root, 'storage'),
    run: join(root, 'run'),
    tmp: join(root, 'tmp'),
    networks: join(root, 'networks'),
    runcState: join(root, 'runc-state'),
    bin: join(root, 'bin'),
    xdgData: join(root, 'xdg-data'),
    xdgRun: join(root, 'xdg-run'),
    xdgConfig: join(root, 'xdg-config'),
    procTmp: join(root, 'proc-tmp'),
  };
  for (const dir of Object.values(d)) mkdirSync(dir, { recursive: true, mode: 0o700 });
  const cgroupParent = `baler-test-podman-${randomBytes(6).toString('hex')}`;

  const runcWrapper = join(d.bin, 'runc');
  writeFileSync(runcWrapper, `#!/bin/sh\nexec ${RUNC_BIN} --root '${d.runcState}' "$@"\n`);
  chmodSync(runcWrapper, 0o755);

  const storageConf = join(root, 'storage.conf');
  writeFileSync(storageConf, ['[storage]', 'driver = "vfs"', `runroot = "${d.run}"`, `graphroot = "${d.graph}"`, ''].join('\n'));
  const containersConf = join(root, 'containers.conf');
  writeFileSync(
    containersConf,
    [
      '[containers]',
      'netns = "none"',
      'cgroups = "no-conmon"',
      'default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]',
      '',
      '[engine]',
      'cgroup_manager = "cgroupfs"',
      'events_logger = "file"',
      `events_logfile_path = "${join(root, 'events.log')}"`,
      'lock_type = "file"',
      `tmp_dir = "${d.tmp}"`,
      'runtime = "runc"',
      'pull_policy = "never"',
      '',
      '[engine.runtimes]',
      `runc = ["${runcWrapper}"]`,
      '',
      '[network]',
      'network_backend = "cni"',
      `network_config_dir = "${d.networks}"`,
      '',
    ].join('\n'),
  );
  writeFileSync(join(root, 'auth.json'), '{"auths": {}}\n');
  const registriesConf = join(root, 'registries.conf');
  writeFileSync(registriesConf, 'unqualified-search-registries = []\nshort-name-mode = "disabled"\n');

  const globalArgs = [
    '--root',
    d.graph,
    '--runroot',
    d.run,
    '--tmpdir',
    d.tmp,
    '--storage-driver',
    'vfs',
    '--cgroup-manager',
    'cgroupfs',
    '--events-backend',
    'file',
    '--network-config-dir',
    d.networks,
    '--runtime',
    'runc',
  ];
  const runDefaults: readonly ContainerDefault[] = [
    { flags: ['--network', '--net'], args: ['--network', 'none'] },
    { flags: ['--pull'], args: ['--pull', 'never'] },
    { flags: ['--ulimit'], valuePrefix: 'nofile=', args: ['--ulimit', 'nofile=1024:1024'] },
    { flags: ['--ulimit'], valuePrefix: 'nproc=', args: ['--ulimit', 'nproc=4096:4096'] },
    { flags: ['--cgroup-parent'], args: ['--cgroup-parent', cgroupParent] },
  ];
  const baseEnv: Record<string, string | undefined> = {
    PATH: SYSTEM_PATH,
    CONTAINERS_CONF: containersConf,
    CONTAINERS_STORAGE_CONF: storageConf,
    CONTAINERS_REGISTRIES_CONF: registriesConf,
    REGISTRY_AUTH_FILE: join(root, 'auth.json'),
    XDG_DATA_HOME: d.xdgData,
    XDG_RUNTIME_DIR: d.xdgRun,
    XDG_CONFIG_HOME: d.xdgConfig,
    TMPDIR: d.procTmp,
    CONTAINER_HOST: undefined,
    CONTAINER_CONNECTION: undefined,
    _CONTAINERS_ROOTLESS_UID: undefined,
    _CONTAINERS_USERNS_CONFIGURED: undefined,
  };

  const podman = (args: string[], opts: PodmanOptions = {}): Promise<RunResult> => {
    const env = { ...baseEnv };
    if (IMAGE_COPY_COMMANDS.has(args[0] ?? '')) {
      // keeps the blob-info cache in XDG_DATA_HOME instead of /var/lib/containers/cache; podman stays rootful
      env._CONTAINERS_ROOTLESS_UID = '65534';
    }
    return run(PODMAN_BIN, [...globalArgs, ...withContainerDefaults(args, runDefaults)], {
      input: opts.input,
      timeoutMs: opts.timeoutMs ?? 120_000,
      env,
      cwd: root,
    });
  };

  let cleaning: Promise<void> | undefined;
  const cleanup = (): Promise<void> => {
    cleaning ??= (async () => {
      try {
        await podman(['rm', '--all', '--force', '--time', '0'], { timeoutMs: 30_000 });
      } catch {
        /* best effort */
      }
      const strays = [...new Set([...pidsMentioning(root + '/'), ...pidsInCgroup(cgroupParent)])];
      if (strays.length > 0) await terminate(strays, 2_000);
      await unmountUnder(root);
      await removeCgroup(cgroupParent);
      await rm(root, { recursive: true, force: true });
    })();
    return cleaning;
  };

  const info = await podman(['info', '--format', '{{.Host.OCIRuntime.Path}} {{.Store.GraphDriverName}}'], {
    timeoutMs: 60_000,
  });
  if (info.code !== 0 || !info.stdout.includes(runcWrapper) || !info.stdout.includes('vfs')) {
    await cleanup();
    throw new Error(`podman info failed or unexpected (code ${info.code}):\n${info.stdout}\n${info.stderr}`);
  }

  return { root, podman, cleanup };
}
