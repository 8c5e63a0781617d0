/**
 * A private, throw-away Docker daemon for integration tests.
 *
 * Everything lives under one fresh temp dir (socket, data-root, exec-root,
 * pidfile, daemon.json, libtrust key, log). The daemon starts its own managed
 * containerd (socket under <exec-root>/containerd/), uses the vfs storage
 * driver, creates no bridge / iptables rules, and puts container cgroups below
 * a random *relative* cgroup parent (i.e. below the test process's own cgroup),
 * which stop() removes again.
 *
 * With `bridge` (DockerdOptions), it has bridge networking and iptables NAT instead, on a bridge
 * and range of the caller's choosing (see dockerd-bridge.ts); stop() removes the chains, rules,
 * bridges and route this added. With `dataRoot`, images and build cache live there and outlast
 * stop() (a cache the caller owns); everything else still goes.
 *
 * Unavoidable system-wide side effects of dockerd 20.10 / containerd 1.6:
 * empty directories /run/docker/plugins and /run/containerd/s (shim sockets
 * are hard-coded there). stop() removes them again if they did not exist
 * before and no other dockerd/containerd is running.
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { prepareBridge, type BridgeNetwork, type PreparedBridge } from './dockerd-bridge.ts';
import {
  SYSTEM_PATH,
  harnessTmpBase,
  pidMentions,
  pidsInCgroup,
  pidsMentioning,
  pidsWithExe,
  removeCgroup,
  run,
  sleep,
  terminate,
  unmountUnder,
  withContainerDefaults,
  type ContainerDefault,
  type RunResult,
} from './run.ts';

export const DOCKER_BIN = '/usr/bin/docker'; // NOT /usr/local/bin/docker (unrelated newer client)
export const DOCKERD_BIN = '/usr/sbin/dockerd';

export interface DockerdOptions {
  /** Bridge networking with iptables (default: none, `--bridge=none --iptables=false`). */
  bridge?: BridgeNetwork;
  /** A data root kept after stop() (default: one inside the temp root, removed with it). */
  dataRoot?: string;
  /** Default vfs (works anywhere); overlay2 is much faster for multi-layer builds. */
  storageDriver?: 'vfs' | 'overlay2';
}

export interface DockerOptions {
  input?: string;
  timeoutMs?: number;
}

export interface Dockerd {
  /** The temp dir holding all daemon state. */
  readonly root: string;
  /** e.g. unix:///tmp/baler-dockerd-XXXXXX/docker.sock */
  readonly host: string;
  /**
   * Run `/usr/bin/docker -H <host> ...args`. For `run`/`create`, `--network none`
   * and `--pull never` are inserted unless the caller passed a network/pull flag.
   */
  docker(args: string[], opts?: DockerOptions): Promise<RunResult>;
  /** Current contents of the dockerd log. */
  log(): string;
  /** Kill dockerd + its containerd (+ shims/containers), unmount, remove cgroups and the temp root. Idempotent. */
  stop(): Promise<void>;
}

/** true if this machine can run the private dockerd harness (root + Debian docker.io + containerd + runc). */
export function dockerAvailable(): boolean {
  return (
    process.platform === 'linux' &&
    process.getuid?.() === 0 &&
    [DOCKER_BIN, DOCKERD_BIN, '/usr/bin/containerd', '/usr/bin/containerd-shim-runc-v2'].every((p) => existsSync(p)) &&
    (existsSync('/usr/sbin/runc') || existsSync('/usr/bin/runc'))
  );
}

const START_TIMEOUT_MS = 60_000;

const DOCKER_RUN_DEFAULTS: readonly ContainerDefault[] = [
  { flags: ['--network', '--net'], args: ['--network', 'none'] },
  { flags: ['--pull'], args: ['--pull', 'never'] },
];

function tail(text: string, lines: number): string {
  return text.split('\n').slice(-lines).join('\n');
}

export async function startDockerd(options: DockerdOptions = {}): Promise<Dockerd> {
  if (!dockerAvailable()) throw new Error('dockerd harness unavailable (needs root, docker.io, containerd, runc)');

  const root = await mkdtemp(join(harnessTmpBase(), 'baler-dockerd-'));
  const socket = join(root, 'docker.sock');
  const host = `unix://${socket}`;
  const dataRoot = options.dataRoot ?? join(root, 'data');
  const execRoot = join(root, 'exec');
  const pidfile = join(root, 'dockerd.pid');
  const configFile = join(root, 'daemon.json');
  const logFile = join(root, 'dockerd.log');
  const clientConfig = join(root, 'client');
  const cgroupParent = `baler-test-dockerd-${randomBytes(6).toString('hex')}`;
  for (const d of [dataRoot, execRoot, clientConfig]) mkdirSync(d, { recursive: true });
  // daemon.json: keep the libtrust key out of /etc/docker/key.json (only settable here, not as a flag)
  writeFileSync(configFile, JSON.stringify({ 'deprecated-key-path': join(root, 'key.json') }, null, 2));

  // remember what existed before, so stop() only removes what this harness (may have) created
  const runDirs = ['/run/docker/plugins', '/run/docker', '/run/containerd/s', '/run/containerd'];
  const preexisting = new Set(runDirs.filter((d) => existsSync(d)));

  let bridge: PreparedBridge | undefined;
  try {
    if (options.bridge) bridge = await prepareBridge(options.bridge);
  } catch (err) {
    await rm(root, { recursive: true, force: true });
    throw err;
  }
  const args = [
    '--config-file',
    configFile,
    '-H',
    host,
    '--data-root',
    dataRoot,
    '--exec-root',
    execRoot,
    '--pidfile',
    pidfile,
    ...(bridge ? bridge.args : ['--iptables=false', '--bridge=none']),
    '--ip6tables=false',
    `--storage-driver=${options.storageDriver ?? 'vfs'}`,
    '--userland-proxy=false',
    '--cgroup-parent',
    cgroupParent,
    '--log-level',
    'info',
  ];
  const logFd = openSync(logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(DOCKERD_BIN, args, {
      stdio: ['ignore', logFd, logFd],
      env: { ...process.env, PATH: SYSTEM_PATH, DOCKER_HOST: undefined, DOCKER_CONFIG: clientConfig },
      cwd: root,
    });
  } finally {
    closeSync(logFd);
  }
  let exited = false;
  const exitPromise = new Promise<void>((resolve) => {
    child.once('exit', () => {
      exited = true;
      resolve();
    });
    child.once('error', () => {
      exited = true;
      resolve();
    });
  });

  // if the test process exits without calling stop() (crash, forgotten afterAll), at least do not
  // leave the daemons running; mounts/cgroups/temp dir would then need manual cleanup.
  const containerdPidFile = join(execRoot, 'containerd', 'containerd.pid');
  const readContainerdPid = (): number | undefined => {
    try {
      return Number(readFileSync(containerdPidFile, 'utf8').trim()) || undefined;
    } catch {
      return undefined;
    }
  };
  const onExit = (): void => {
    const cpid = readContainerdPid();
    for (const pid of [child.pid, cpid]) {
      if (pid === undefined || !pidMentions(pid, root + '/')) continue;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  };
  process.once('exit', onExit);

  const log = (): string => {
    try {
      return readFileSync(logFile, 'utf8');
    } catch {
      return '';
    }
  };

  const docker = (dockerArgs: string[], opts: DockerOptions = {}): Promise<RunResult> =>
    run(DOCKER_BIN, ['-H', host, ...withContainerDefaults(dockerArgs, DOCKER_RUN_DEFAULTS)], {
      input: opts.input,
      timeoutMs: opts.timeoutMs ?? 120_000,
      env: { PATH: SYSTEM_PATH, DOCKER_CONFIG: clientConfig, DOCKER_HOST: undefined, DOCKER_CONTEXT: undefined },
    });

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      // 1. remove containers while the daemon is still up (fast path; dockerd would otherwise wait 15 s per container)
      if (!exited) {
        try {
          const ps = await docker(['ps', '-aq'], { timeoutMs: 10_000 });
          const ids = ps.stdout.split('\n').filter(Boolean);
          if (ids.length > 0) await docker(['rm', '-f', ...ids], { timeoutMs: 30_000 });
        } catch {
          /* best effort */
        }
      }
      const containerdPid = readContainerdPid();
      // 2. dockerd (our child): SIGTERM, then SIGKILL
      if (!exited && child.pid !== undefined) {
        child.kill('SIGTERM');
        let timer: NodeJS.Timeout | undefined;
        const timedOut = await Promise.race([exitPromise.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), 20_000)))]);
        clearTimeout(timer);
        if (timedOut) {
          child.kill('SIGKILL');
          await exitPromise;
        }
      }
      // 3. its managed containerd (dockerd normally stops it; make sure, by pid)
      if (containerdPid !== undefined && pidMentions(containerdPid, root + '/')) await terminate([containerdPid], 10_000);
      // 4. anything else still referencing our root (shims, stray docker clients) or left in our cgroup
      const strays = [...new Set([...pidsMentioning(root + '/'), ...pidsInCgroup(cgroupParent)])];
      if (strays.length > 0) await terminate(strays, 2_000);
      process.removeListener('exit', onExit);
      // 5. mounts, cgroups, temp root (and what dockerd left in iptables and links)
      await unmountUnder(root);
      if (options.dataRoot) await unmountUnder(options.dataRoot);
      await bridge?.cleanup();
      await removeCgroup(cgroupParent);
      await rm(root, { recursive: true, force: true });
      // 6. the empty, hard-coded dirs dockerd/containerd create in /run, unless someone else uses them
      const otherEngines = pidsWithExe([DOCKERD_BIN, '/usr/bin/containerd', '/usr/bin/containerd-shim-runc-v2', '/usr/bin/containerd-shim']);
      if (otherEngines.length === 0) {
        for (const d of runDirs) {
          if (preexisting.has(d)) continue;
          try {
            rmdirSync(d); // only succeeds when empty
          } catch {
            /* in use or not ours */
          }
        }
      }
    })();
    return stopping;
  };

  // wait until the API answers
  const deadline = Date.now() + START_TIMEOUT_MS;
  let last: RunResult | undefined;
  for (;;) {
    if (exited) {
      const text = log(); // before stop() removes it
      await stop();
      throw new Error(`dockerd exited during startup (code ${child.exitCode})\n--- dockerd log\n${tail(text, 80)}`);
    }
    if (existsSync(socket)) {
      try {
        last = await docker(['version', '--format', '{{.Server.Version}}'], { timeoutMs: 10_000 });
        if (last.code === 0) break;
      } catch {
        /* retry */
      }
    }
    if (Date.now() > deadline) {
      const text = log();
      await stop();
      throw new Error(`dockerd did not answer within ${START_TIMEOUT_MS} ms` + (last ? `\n--- docker version\n${last.stdout}${last.stderr}` : '') + `\n--- dockerd log\n${tail(text, 80)}`);
    }
    await sleep(100);
  }

  return { root, host, docker, log, stop };
}
