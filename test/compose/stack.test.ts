/**
 * `npm run test:compose`: the Dockerfile and docker-compose.yml, for real. A private dockerd
 * with bridge networking (its own bridge, range 10.214.0.0/16, blackholed), the images built
 * from local Debian/Node base images (Docker Hub is not reachable here), the stack (Redis,
 * Ceph RGW as the S3 store, two API replicas, a worker) brought up with Debian's
 * docker-compose 1.29, one build through it with curl (upload to one API replica, everything
 * else through the other; a runAsRoot step in the worker's VM), the image checked with
 * skopeo, and everything
 * torn down, also when a phase fails: containers, volumes, networks, dockerd, and exactly the
 * iptables chains and rules, bridges, route and mounts it added.
 *
 * The engine's data root (images, build cache) stays in .cache/docker so that a second run
 * does not rebuild the images; BALER_COMPOSE_CLEAN=1 removes it too.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startDockerd, type Dockerd } from '../support/dockerd.ts';
import { mountsUnder, run, SYSTEM_PATH, type RunResult } from '../support/run.ts';

const repo = resolve(import.meta.dirname, '..', '..');
const DATA_ROOT = join(repo, '.cache', 'docker');
const BRIDGE = {
  name: `baler-dk${randomBytes(2).toString('hex')}`,
  address: '10.214.255.1/24',
  pool: '10.214.0.0/17',
  poolSubnetSize: 24,
  range: '10.214.0.0/16',
};
const PROJECT = 'balertest';
const API_UID = 10001; // the `baler` user of the Dockerfile
const LOCAL_BASES = { BALER_DEBIAN_IMAGE: 'baler-base/debian:bookworm', BALER_NODE_IMAGE: 'baler-base/node:20-bookworm' };

const phases: Array<{ name: string; ms: number; ok: boolean }> = [];
async function phase<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  let ok = false;
  try {
    const result = await fn();
    ok = true;
    return result;
  } finally {
    const ms = performance.now() - t0;
    phases.push({ name, ms, ok });
    process.stdout.write(`[compose] ${name}: ${(ms / 1000).toFixed(1)} s${ok ? '' : ' (failed)'}\n`);
  }
}

function check(r: RunResult, what: string): string {
  if (r.code !== 0) throw new Error(`${what} failed (${r.code})\n--- stdout\n${r.stdout.slice(-4000)}\n--- stderr\n${r.stderr.slice(-4000)}`);
  return r.stdout;
}

/** Two consecutive free loopback ports, one per API replica. */
async function freePortPair(): Promise<number> {
  const free = (port: number) =>
    new Promise<boolean>((ok) => {
      const s = createServer();
      s.once('error', () => ok(false));
      s.listen(port, '127.0.0.1', () => s.close(() => ok(true)));
    });
  for (;;) {
    const port = 20000 + Math.floor(Math.random() * 40000);
    if ((await free(port)) && (await free(port + 1))) return port;
  }
}

let dockerd: Dockerd | undefined;
let tmp: string | undefined;
let composeEnv: Record<string, string | undefined> = {};
const composeFiles = ['-f', join(repo, 'docker-compose.yml'), ...(existsSync('/dev/kvm') ? ['-f', join(repo, 'docker-compose.kvm.yml')] : [])];

function compose(args: string[], timeoutMs = 600_000): Promise<RunResult> {
  return run('docker-compose', ['-p', PROJECT, ...composeFiles, ...args], { cwd: repo, env: composeEnv, timeoutMs });
}

async function teardown(): Promise<void> {
  if (dockerd) {
    const d = dockerd;
    dockerd = undefined;
    await phase('teardown', async () => {
      try {
        await compose(['down', '-v', '--remove-orphans', '-t', '10'], 120_000);
        // whatever compose did not get to (a failed `up`): volumes and networks of this project
        const volumes = (await d.docker(['volume', 'ls', '-q'])).stdout.split('\n').filter(Boolean);
        if (volumes.length > 0) await d.docker(['volume', 'rm', '-f', ...volumes]);
        await d.docker(['network', 'prune', '-f']);
        // superseded builds of our images (the cache keeps what the current Dockerfile uses)
        await d.docker(['image', 'prune', '-f']);
      } finally {
        await d.stop(); // containers, dockerd, containerd, mounts, cgroups, iptables, bridges, route
      }
      if (process.env.BALER_COMPOSE_CLEAN === '1') await rm(DATA_ROOT, { recursive: true, force: true });
    });
  }
  if (!tmp) return;
  await rm(tmp, { recursive: true, force: true });
  tmp = undefined;
  process.stdout.write('[compose] phases: ' + phases.map((p) => `${p.name} ${(p.ms / 1000).toFixed(1)} s${p.ok ? '' : ' (failed)'}`).join(', ') + '\n');
}

afterAll(teardown, 300_000);

describe('docker-compose stack', () => {
  it('builds the images, runs one build through two API replicas and a worker, and tears down', async () => {
    await phase('install packages', async () => {
      check(await run(process.execPath, [join(repo, 'scripts', 'setup.mjs'), 'compose'], { cwd: repo, timeoutMs: 900_000 }), 'setup.mjs compose');
    });

    tmp = await mkdtemp('/tmp/baler-compose-');
    const token = randomBytes(24).toString('hex');
    const tokensFile = join(tmp, 'tokens');
    await writeFile(tokensFile, `default ${token}\n`, { mode: 0o400 });
    await chown(tokensFile, API_UID, 0); // only the non-root API user reads it
    const port = await freePortPair();

    await mkdir(DATA_ROOT, { recursive: true });
    dockerd = await phase('start dockerd', () => startDockerd({ bridge: BRIDGE, storageDriver: 'overlay2', dataRoot: DATA_ROOT }));
    composeEnv = {
      PATH: SYSTEM_PATH, // Debian's docker CLI, not an unrelated one in /usr/local/bin
      DOCKER_HOST: dockerd.host,
      DOCKER_CONFIG: join(dockerd.root, 'client'),
      DOCKER_CONTEXT: undefined,
      COMPOSE_PROJECT_NAME: undefined,
      BALER_TOKENS_FILE: tokensFile,
      BALER_API_PORTS: `${port}-${port + 1}`,
      BALER_S3_ACCESS_KEY: randomBytes(10).toString('hex'),
      BALER_S3_SECRET_KEY: randomBytes(20).toString('hex'),
      BALER_KVM_GID: existsSync('/dev/kvm') ? String(statSync('/dev/kvm').gid) : undefined,
      ...LOCAL_BASES,
    };

    await phase('base images', async () => {
      check(await run(join(repo, 'scripts', 'docker', 'base-images.sh'), [], { cwd: repo, env: composeEnv, timeoutMs: 1_200_000 }), 'base-images.sh');
    });
    await phase('build images', async () => {
      check(await compose(['build'], 2_400_000), 'docker-compose build');
    });
    await phase('up until healthy', async () => {
      check(await compose(['up', '-d', '--no-build']), 'docker-compose up');
      const deadline = Date.now() + 180_000;
      for (;;) {
        const ids = check(await compose(['ps', '-q']), 'docker-compose ps')
          .split('\n')
          .filter(Boolean);
        const states = await Promise.all(
          ids.map(async (id) => check(await dockerd!.docker(['inspect', '--format', '{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}', id]), 'inspect').trim()),
        );
        const workerLog = (await compose(['logs', '--no-color', 'worker'])).stdout;
        const ready = ids.length === 5 && states.every((s) => / running( healthy)?$/.test(s)) && workerLog.includes('worker started');
        if (ready) break;
        if (Date.now() > deadline) throw new Error(`stack not healthy in time: ${states.join('; ')}\n${(await compose(['logs', '--no-color', '--tail', '40'])).stdout}`);
        await new Promise((r) => setTimeout(r, 1000));
      }
    });

    // Upload through one replica, everything else through the other: they share Redis and S3.
    const [apiA, apiB] = [`http://127.0.0.1:${port}`, `http://127.0.0.1:${port + 1}`];
    const auth = ['-H', `Authorization: Bearer ${token}`];
    const curl = async (args: string[]): Promise<string> =>
      check(await run('curl', ['-sS', '--fail-with-body', '--max-time', '120', ...auth, ...args], { timeoutMs: 150_000 }), `curl ${args.join(' ')}`);
    const archive = join(tmp, 'hello.tar');
    const rootfs = join(tmp, 'rootfs.tar');
    const buildId = await phase('one build with curl', async () => {
      const contents = join(tmp!, 'contents');
      await mkdir(join(contents, 'etc'), { recursive: true });
      await writeFile(join(contents, 'etc', 'greeting'), 'hello from compose\n');
      const tarFile = join(tmp!, 'contents.tar');
      check(await run('tar', ['-C', contents, '--owner=0', '--group=0', '-cf', tarFile, 'etc']), 'tar');
      const blob = JSON.parse(await curl(['--data-binary', `@${tarFile}`, '-H', 'Content-Type: application/octet-stream', `${apiA}/v1/blobs`])) as { digest: string };
      const spec = {
        name: 'compose-hello',
        tag: '1.0',
        contents: [{ tar: blob.digest }, { text: 'hi\n', to: '/etc/motd' }],
        // runs in the worker's microVM (QEMU in the worker container)
        runAsRoot: 'cat /etc/greeting > /etc/from-vm',
        config: { Cmd: ['/bin/sh', '-c', 'cat /etc/motd'] },
      };
      const submitted = JSON.parse(await curl(['-H', 'Content-Type: application/json', '--data-binary', JSON.stringify(spec), `${apiB}/v1/builds`])) as { id: string };
      const deadline = Date.now() + 600_000;
      for (;;) {
        const build = JSON.parse(await curl([`${apiB}/v1/builds/${submitted.id}`])) as { status: string; error?: unknown };
        if (build.status === 'succeeded') break;
        if (build.status === 'failed' || build.status === 'cancelled' || Date.now() > deadline) {
          throw new Error(`build ${build.status}: ${JSON.stringify(build.error)}\n${(await compose(['logs', '--no-color', '--tail', '60', 'worker'])).stdout}`);
        }
        await new Promise((r) => setTimeout(r, 500));
      }
      // uncompressed: skopeo 1.9 does not read a gzip'd docker-archive
      await curl(['-o', archive, `${apiB}/v1/builds/${submitted.id}/image?compression=none`]);
      await curl(['-o', rootfs, `${apiB}/v1/builds/${submitted.id}/image?format=rootfs&compression=none`]);
      return submitted.id;
    });
    expect(buildId).toMatch(/^[0-9a-z]+$/);

    await phase('check image with skopeo', async () => {
      const inspected = JSON.parse(check(await run('skopeo', ['inspect', `docker-archive:${archive}`]), 'skopeo inspect')) as { Layers: string[] };
      const config = JSON.parse(check(await run('skopeo', ['inspect', '--config', `docker-archive:${archive}`]), 'skopeo inspect --config')) as {
        config: { Cmd: string[] };
        rootfs: { diff_ids: string[] };
      };
      expect(config.config.Cmd).toEqual(['/bin/sh', '-c', 'cat /etc/motd']);
      // no base image: the contents and what runAsRoot changed make one layer
      expect(config.rootfs.diff_ids).toHaveLength(1);
      expect(inspected.Layers).toHaveLength(1);
      // the file the script wrote in the worker's VM
      expect(check(await run('tar', ['-xOf', rootfs, 'etc/from-vm']), 'tar -xO etc/from-vm')).toBe('hello from compose\n');
    });

    const root = dockerd.root;
    await teardown();
    // nothing left on the host: no DOCKER chains, no bridge of ours, no route, no mounts
    for (const table of ['filter', 'nat']) {
      expect(check(await run('iptables-save', ['-t', table]), 'iptables-save')).not.toMatch(/DOCKER/);
    }
    const links = check(await run('ip', ['-o', 'addr', 'show']), 'ip addr');
    expect(links).not.toContain(BRIDGE.name);
    expect(links).not.toMatch(/inet 10\.214\./);
    expect(check(await run('ip', ['route', 'show']), 'ip route')).not.toContain('10.214.');
    expect(mountsUnder(root)).toEqual([]);
    expect(mountsUnder(DATA_ROOT)).toEqual([]);
    expect(existsSync(root)).toBe(false);
  });
});
