/**
 * A private, throw-away rootful buildah (Debian 12's buildah 1.28) for the peer side of
 * `bench/vm.ts`. Everything it writes lives under one fresh temp dir; nothing goes to
 * /var/lib/containers, /etc/containers or /run/containers, and no network is used.
 *
 * What it takes on this machine (root, cgroup v1, no systemd as pid 1), checked with strace:
 *  - storage: `--root/--runroot` + `--storage-driver vfs` + a private CONTAINERS_STORAGE_CONF
 *    (no overlay mounts to leak; vfs copies the layer, which is part of the peer's real cost);
 *  - `from`/`commit` always open /var/lib/containers/cache/blob-info-cache-v1.boltdb (read-write)
 *    when euid is 0, whatever the flags. The only knob is containers/image's
 *    `_CONTAINERS_ROOTLESS_UID` (any non-zero value): the cache then goes to
 *    `$XDG_DATA_HOME/containers/cache`. buildah stays rootful (storage's own rootless test looks
 *    at the real euid), so we set it for every command;
 *  - `--signature-policy <private policy.json>` on `from`/`commit` (else /etc/containers/policy.json
 *    is read; only its existence is still stat()ed, for a flag default);
 *  - `run --runtime runc --runtime-flag root=<private>`: buildah runs runc itself (no conmon), so
 *    the runtime flag reaches every runc call (create/start/state/delete) and /run/runc is never
 *    used. `--isolation oci` (the default as root) spelled out;
 *  - `run --network none`: a new network namespace with only `lo` (checked: `ip link` in the
 *    container shows lo alone). containers.conf also says `netns = "none"`, and a private CNI
 *    `network_config_dir` (buildah takes its cni.lock there even with none);
 *  - cgroups: runc makes `/sys/fs/cgroup/<ctl>/<parent>/buildah-buildah<N>` and removes it on
 *    `runc delete`; `from --cgroup-parent <random relative name>` keeps it under a name we know,
 *    so cleanup can remove what a killed run leaves behind. `cgroup_manager = "cgroupfs"` (no
 *    systemd here);
 *  - TMPDIR private too: buildah writes the runc bundle for `run` under it.
 * Cost to know when reading the numbers: with vfs, `commit` diffs the container tree (naive diff)
 * and then idles until the wall clock reaches the next whole second, so it takes anything from
 * ~0.1 to ~1.1 s depending on the clock phase.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SYSTEM_PATH, pidsInCgroup, pidsMentioning, removeCgroup, run, terminate, unmountUnder, type RunResult } from '../../test/support/run.ts';
import type { Cleanups } from './cleanup.ts';
import { msBetween } from './stats.ts';

export const BUILDAH_BIN = '/usr/bin/buildah';
const RUNC_BIN = '/usr/sbin/runc';

/** Installs buildah (and runc) from Debian when missing. Returns `buildah --version`. */
export async function ensureBuildah(): Promise<string> {
  if (!existsSync(BUILDAH_BIN) || !existsSync(RUNC_BIN)) {
    process.stderr.write('bench:vm: installing buildah and runc with apt-get\n');
    const env = { DEBIAN_FRONTEND: 'noninteractive', PATH: SYSTEM_PATH };
    const install = await run('apt-get', ['install', '-y', '--no-install-recommends', 'buildah', 'runc'], { env, timeoutMs: 600_000 });
    if (install.code !== 0) throw new Error(`apt-get install buildah runc failed:\n${install.stderr}`);
  }
  const version = await run(BUILDAH_BIN, ['--version'], { timeoutMs: 30_000 });
  if (version.code !== 0) throw new Error(`buildah --version failed: ${version.stderr}`);
  return version.stdout.trim();
}

function globalFlags(graph: string, runRoot: string): string[] {
  return ['--root', graph, '--runroot', runRoot, '--storage-driver', 'vfs', '--cgroup-manager', 'cgroupfs'];
}

/** Flags each subcommand needs to keep to the private state. */
function commandFlags(p: { policy: string; cgroupParent: string; runcState: string }): Record<string, string[]> {
  return {
    from: ['--signature-policy', p.policy, '--pull-never', '--cgroup-parent', p.cgroupParent],
    run: ['--isolation', 'oci', '--runtime', 'runc', '--runtime-flag', `root=${p.runcState}`, '--network', 'none'],
    commit: ['--signature-policy', p.policy],
  };
}

/** The peer's command lines as the benchmark runs them (R = the private root), for the results; `arch`: as timedBuildahBuild's. */
export function describeBuildahCommands(arch?: string): string[] {
  const g = globalFlags('R/storage', 'R/run').join(' ');
  const f = commandFlags({ policy: 'R/policy.json', cgroupParent: 'bench-buildah-<random>', runcState: 'R/runc-state' });
  const sub = (name: string): string => (f[name] ?? []).join(' ');
  return [
    `# env: CONTAINERS_CONF=R/containers.conf CONTAINERS_STORAGE_CONF=R/storage.conf CONTAINERS_REGISTRIES_CONF=R/registries.conf`,
    `#      REGISTRY_AUTH_FILE=R/auth.json XDG_{DATA,RUNTIME,CONFIG}_HOME=R/xdg-* TMPDIR=R/proc-tmp _CONTAINERS_ROOTLESS_UID=65534`,
    `buildah ${g} from ${sub('from')}${arch ? ` --arch ${arch}` : ''} --quiet --name bench docker-archive:<baler's${arch ? ` ${arch}` : ''} base archive>`,
    `buildah ${g} run ${sub('run')} <ctr> -- sh -c '<the script>'`,
    `buildah ${g} commit ${sub('commit')} --quiet --format docker <ctr> docker-archive:R/out.tar:localhost/bench-change:1`,
    `buildah ${g} rm <ctr>`,
  ];
}

export interface PrivateBuildah {
  readonly root: string;
  buildah(args: readonly string[], timeoutMs?: number): Promise<RunResult>;
  /** Remove containers and images, kill leftovers, unmount, remove the cgroup and the temp root. Idempotent. */
  cleanup(): Promise<void>;
}

export async function startBuildah(tmpBase: string): Promise<PrivateBuildah> {
  const root = await mkdtemp(join(tmpBase, 'bench-buildah-'));
  const d = {
    graph: join(root, 'storage'),
    run: join(root, 'run'),
    tmp: join(root, 'tmp'),
    networks: join(root, 'networks'),
    runcState: join(root, 'runc-state'),
    xdgData: join(root, 'xdg-data'),
    xdgRun: join(root, 'xdg-run'),
    xdgConfig: join(root, 'xdg-config'),
    procTmp: join(root, 'proc-tmp'),
  };
  for (const dir of Object.values(d)) await mkdir(dir, { recursive: true, mode: 0o700 });
  const cgroupParent = `bench-buildah-${randomBytes(6).toString('hex')}`;

  const storageConf = join(root, 'storage.conf');
  await writeFile(storageConf, ['[storage]', 'driver = "vfs"', `runroot = "${d.run}"`, `graphroot = "${d.graph}"`, ''].join('\n'));
  const containersConf = join(root, 'containers.conf');
  await writeFile(
    containersConf,
    [
      '[containers]',
      'netns = "none"',
      '',
      '[engine]',
      'cgroup_manager = "cgroupfs"',
      'events_logger = "none"',
      'lock_type = "file"',
      `tmp_dir = "${d.tmp}"`,
      'runtime = "runc"',
      'pull_policy = "never"',
      '',
      '[network]',
      'network_backend = "cni"',
      `network_config_dir = "${d.networks}"`,
      '',
    ].join('\n'),
  );
  const registriesConf = join(root, 'registries.conf');
  await writeFile(registriesConf, 'unqualified-search-registries = []\nshort-name-mode = "disabled"\n');
  const policy = join(root, 'policy.json');
  await writeFile(policy, '{"default":[{"type":"insecureAcceptAnything"}]}\n');
  const auth = join(root, 'auth.json');
  await writeFile(auth, '{"auths":{}}\n');

  const globalArgs = globalFlags(d.graph, d.run);
  const env: Record<string, string | undefined> = {
    PATH: SYSTEM_PATH,
    CONTAINERS_CONF: containersConf,
    CONTAINERS_STORAGE_CONF: storageConf,
    CONTAINERS_REGISTRIES_CONF: registriesConf,
    REGISTRY_AUTH_FILE: auth,
    XDG_DATA_HOME: d.xdgData,
    XDG_RUNTIME_DIR: d.xdgRun,
    XDG_CONFIG_HOME: d.xdgConfig,
    TMPDIR: d.procTmp,
    // keeps the blob-info cache out of /var/lib/containers/cache; buildah stays rootful
    _CONTAINERS_ROOTLESS_UID: '65534',
    _CONTAINERS_USERNS_CONFIGURED: undefined,
    BUILDAH_ISOLATION: undefined,
    BUILDAH_RUNTIME: undefined,
    CONTAINER_HOST: undefined,
    STORAGE_DRIVER: undefined,
    STORAGE_OPTS: undefined,
  };
  const perCommand = commandFlags({ policy, cgroupParent, runcState: d.runcState });

  const buildah = (args: readonly string[], timeoutMs = 120_000): Promise<RunResult> => {
    const [sub, ...rest] = args;
    if (sub === undefined) throw new Error('buildah: no subcommand');
    return run(BUILDAH_BIN, [...globalArgs, sub, ...(perCommand[sub] ?? []), ...rest], { env, timeoutMs, cwd: root });
  };

  let cleaning: Promise<void> | undefined;
  const cleanup = (): Promise<void> => {
    cleaning ??= (async () => {
      for (const args of [
        ['rm', '--all'],
        ['rmi', '--all', '--force'],
      ]) {
        try {
          await buildah(args, 60_000);
        } catch {
          /* best effort */
        }
      }
      const strays = [...new Set([...pidsMentioning(root + '/'), ...pidsInCgroup(cgroupParent)])];
      if (strays.length > 0) await terminate(strays, 2_000);
      await unmountUnder(root);
      await removeCgroup(cgroupParent);
      await rm(root, { recursive: true, force: true });
    })();
    return cleaning;
  };

  return { root, buildah, cleanup };
}

export interface BuildahRun {
  /** from + run + commit + rm. */
  ms: number;
  phases: { from: number; run: number; commit: number; rm: number };
  archivePath: string;
}

/**
 * The peer's build of the same change, timed: `buildah from docker-archive:<base>`, `buildah run
 * --runtime runc <ctr> -- sh -c <script>`, `buildah commit <ctr> docker-archive:<out>`, `buildah
 * rm <ctr>`. Each is a real CLI process, as a user would run them. The output goes to `outPath`.
 * `arch` (e.g. arm64): `from --arch`, for a base of another architecture than the host's; its
 * `run` then goes through qemu-user (binfmt_misc), as `buildah build --platform` would.
 */
export async function timedBuildahBuild(b: PrivateBuildah, baseArchive: string, script: string, outPath: string, arch?: string): Promise<BuildahRun> {
  const must = (what: string, r: RunResult): RunResult => {
    if (r.code !== 0) throw new Error(`buildah ${what} failed (code ${r.code}):\n${r.stdout}\n${r.stderr}`);
    return r;
  };
  const t0 = process.hrtime.bigint();
  const from = must('from', await b.buildah(['from', ...(arch ? ['--arch', arch] : []), '--quiet', '--name', 'bench', `docker-archive:${baseArchive}`]));
  const ctr = from.stdout.trim();
  const t1 = process.hrtime.bigint();
  must('run', await b.buildah(['run', ctr, '--', 'sh', '-c', script]));
  const t2 = process.hrtime.bigint();
  must('commit', await b.buildah(['commit', '--quiet', '--format', 'docker', ctr, `docker-archive:${outPath}:localhost/bench-change:1`]));
  const t3 = process.hrtime.bigint();
  must('rm', await b.buildah(['rm', ctr]));
  const t4 = process.hrtime.bigint();
  const phases = { from: msBetween(t0, t1), run: msBetween(t1, t2), commit: msBetween(t2, t3), rm: msBetween(t3, t4) };
  return { ms: msBetween(t0, t4), phases, archivePath: outPath };
}

export interface BuildahScratchRun {
  /** from + add/copy + commit + rm. */
  ms: number;
  phases: { from: number; add: number; commit: number; rm: number };
  archivePath: string;
}

/**
 * The peer's build of (a) in `bench/build.ts`, timed: `buildah from scratch`, then `buildah add
 * <ctr> <tree.tar> /` (buildah unpacks a local tar, as Dockerfile ADD does) or, with `input.dir`,
 * `buildah copy <ctr> <dir>/ /` (Dockerfile COPY), `buildah commit <ctr> docker-archive:<out>`
 * (uncompressed), `buildah rm <ctr>`. Each a real CLI process.
 */
export async function timedBuildahScratchBuild(b: PrivateBuildah, input: { tar: string } | { dir: string }, outPath: string, name = 'localhost/bench-a:latest'): Promise<BuildahScratchRun> {
  const must = (what: string, r: RunResult): RunResult => {
    if (r.code !== 0) throw new Error(`buildah ${what} failed (code ${r.code}):\n${r.stdout}\n${r.stderr}`);
    return r;
  };
  const t0 = process.hrtime.bigint();
  const ctr = must('from', await b.buildah(['from', '--quiet', '--name', 'bench-a', 'scratch'])).stdout.trim();
  const t1 = process.hrtime.bigint();
  if ('tar' in input) must('add', await b.buildah(['add', ctr, input.tar, '/']));
  else must('copy', await b.buildah(['copy', ctr, `${input.dir}/`, '/']));
  const t2 = process.hrtime.bigint();
  must('commit', await b.buildah(['commit', '--quiet', '--format', 'docker', ctr, `docker-archive:${outPath}:${name}`]));
  const t3 = process.hrtime.bigint();
  must('rm', await b.buildah(['rm', ctr]));
  const t4 = process.hrtime.bigint();
  return { ms: msBetween(t0, t4), phases: { from: msBetween(t0, t1), add: msBetween(t1, t2), commit: msBetween(t2, t3), rm: msBetween(t3, t4) }, archivePath: outPath };
}

/** The (a) peer command lines as `bench/build.ts` runs them (R = the private root). */
export function describeBuildahScratchCommands(input: 'tar' | 'dir'): string[] {
  const g = globalFlags('R/storage', 'R/run').join(' ');
  const f = commandFlags({ policy: 'R/policy.json', cgroupParent: 'bench-buildah-<random>', runcState: 'R/runc-state' });
  return [
    `buildah ${g} from ${(f.from ?? []).join(' ')} --quiet --name bench-a scratch`,
    input === 'tar' ? `buildah ${g} add <ctr> <tree.tar> /` : `buildah ${g} copy <ctr> <tree dir>/ /`,
    `buildah ${g} commit ${(f.commit ?? []).join(' ')} --quiet --format docker <ctr> docker-archive:<out>:localhost/bench-a:latest`,
    `buildah ${g} rm <ctr>`,
  ];
}

/** A fresh private buildah for `body`, removed when it ends, also on Ctrl-C. */
export function withPrivateBuildah<T>(cleanups: Cleanups, tmpBase: string, body: (bh: PrivateBuildah) => Promise<T>): Promise<T> {
  cleanups.checkInterrupted();
  let bh: PrivateBuildah | undefined;
  return cleanups.with(
    async () => {
      await bh?.cleanup();
    },
    async () => {
      bh = await startBuildah(tmpBase);
      return body(bh);
    },
  );
}
