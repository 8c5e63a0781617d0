/**
 * runAsRoot and extraCommands end to end: the real API, a real worker and real QEMU (TCG
 * here). The images are then run by docker and podman.
 */
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baseImageTar } from '../support/base-image.ts';
import { startDockerd, type Dockerd } from '../support/dockerd.ts';
import { sha256File } from '../support/images.ts';
import { startPodman, type Podman } from '../support/podman.ts';
import { pidsMentioning, run } from '../support/run.ts';
import { downloadImage, startService, submitBuild, uploadFile, waitForBuild, type BuildView, type Service } from '../support/service.ts';

let service: Service;
let work: string;
let baseId: string;
let vmTmp: string;

const RUN_AS_ROOT = `
# Debian's static busybox has no adduser: add the user the way useradd would.
echo 'app:x:1000:1000::/home/app:/bin/sh' >> /etc/passwd
echo 'app:!:0:0:99999:7:::' >> /etc/shadow
echo 'app:x:1000:' >> /etc/group
mkdir -p /home/app && chown -R app:app /home/app && chmod 0700 /home/app
echo written-by-root > /home/app/note && chown app:app /home/app/note && chmod 0640 /home/app/note
rm /etc/base-file
rm -rf /some/dir && mkdir /some/dir && touch /some/dir/new
cp /bin/busybox /bin/capped && setcap cap_net_bind_service=+ep /bin/capped
echo runAsRoot says hello
`;

const EXTRA_COMMANDS = `
ln -s /home/app/note note-link
echo from-extra-commands > extra.txt
echo extraCommands ran in $(pwd)
`;

const CHECK = [
  'id -u',
  'test -e /etc/base-file && echo base-file-still-there || echo base-file-gone',
  'ls -A /some/dir',
  "stat -c '%a %u %g %n' /home/app /home/app/note",
  'cat /home/app/note',
  'getcap /bin/capped',
  'cat /note-link /extra.txt',
  'test -e /.baler && echo guest-tools-leaked || echo no-guest-tools',
].join('; ');

const EXPECTED = [
  '1000',
  'base-file-gone',
  'new',
  '700 1000 1000 /home/app',
  '640 1000 1000 /home/app/note',
  'written-by-root',
  '/bin/capped cap_net_bind_service=ep',
  'written-by-root',
  'from-extra-commands',
  'no-guest-tools',
].join('\n');

const childSpec = (tag: string) => ({
  name: 'baler-e2e/root',
  tag,
  compression: 'none',
  fromImage: { build: baseId },
  shadowSetup: true,
  runAsRoot: RUN_AS_ROOT,
  extraCommands: EXTRA_COMMANDS,
  config: { User: 'app', Cmd: ['/bin/sh', '-c', CHECK] },
});

/** A root with one data file and no shell or tools at all. */
async function shellessTar(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'baler-shellless-'));
  await mkdir(join(dir, 'root/data'), { recursive: true });
  await run('sh', ['-c', `echo data > '${dir}/root/data/file' && tar -C '${dir}/root' -cf '${dir}/root.tar' .`]);
  return join(dir, 'root.tar');
}

async function build(spec: unknown, timeoutMs = 300_000): Promise<BuildView> {
  return waitForBuild(service, await submitBuild(service, spec), timeoutMs);
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'baler-vm-e2e-'));
  vmTmp = join(work, 'vm-tmp');
  await mkdir(vmTmp);
  // No warm VMs: these tests check that a step's VM and files are gone afterwards, and a
  // pool keeps its next VM waiting in the same temp dir by design (test/vm covers the pool).
  service = await startService({ BALER_VM_TMPDIR: vmTmp, BALER_VM_POOL: '0' });
  const base = await uploadFile(service, await baseImageTar({ 'etc/base-file': 'delete me\n', 'some/dir/old1': 'old\n', 'some/dir/sub/old2': 'old\n' }));
  const baseBuild = await build({ name: 'baler-e2e/base', contents: [{ tar: base }], config: { Env: ['PATH=/bin', 'BASE=1'] } });
  expect(baseBuild.status, JSON.stringify(baseBuild.error)).toBe('succeeded');
  baseId = baseBuild.id;
}, 120_000);

afterAll(async () => {
  await service?.stop();
  await rm(work, { recursive: true, force: true });
});

describe('a runAsRoot build over an earlier build', () => {
  let built: BuildView;
  let archive: string;

  beforeAll(async () => {
    built = await build(childSpec('one'));
    expect(built.status, JSON.stringify(built.error)).toBe('succeeded');
    archive = join(work, 'root-one.tar');
    await downloadImage(service, built.id, archive);
  }, 300_000);

  it('reuses the base layers as they are and adds one layer', async () => {
    const base = (await (await fetch(`${service.url}/v1/builds/${baseId}`)).json()) as BuildView;
    expect(built.result?.diffIds.slice(0, 1)).toEqual(base.result?.diffIds);
    expect(built.result?.diffIds).toHaveLength(2);
  });

  it("keeps the scripts' output as the build log", async () => {
    const res = await fetch(`${service.url}/v1/builds/${built.id}/logs`);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const log = await res.text();
    expect(log).toContain('runAsRoot says hello');
    expect(log).toMatch(/extraCommands ran in \//);
  });

  it('gives byte-identical archives when built again', async () => {
    const again = await build(childSpec('one'));
    expect(again.status).toBe('succeeded');
    const path = join(work, 'root-one-again.tar');
    await downloadImage(service, again.id, path);
    expect(await sha256File(path)).toBe(await sha256File(archive));
  }, 300_000);

  describe('under docker', () => {
    let dockerd: Dockerd;
    beforeAll(async () => {
      dockerd = await startDockerd();
    }, 60_000);
    afterAll(async () => dockerd?.stop(), 60_000);

    it('runs as the user, with the deletions, ownership, modes and capability as the script left them', async () => {
      const load = await dockerd.docker(['load', '-i', archive]);
      expect(load.code, load.stderr).toBe(0);
      const ran = await dockerd.docker(['run', '--rm', '--network', 'none', 'baler-e2e/root:one']);
      expect(ran.code, ran.stderr).toBe(0);
      expect(ran.stdout.trim()).toBe(EXPECTED);
      const env = await dockerd.docker(['run', '--rm', '--network', 'none', 'baler-e2e/root:one', '/bin/sh', '-c', 'echo $BASE']);
      expect(env.stdout.trim()).toBe('1'); // Env inherited from the base
    }, 120_000);
  });

  describe('under podman', () => {
    let podman: Podman;
    beforeAll(async () => {
      podman = await startPodman();
    }, 60_000);
    afterAll(async () => podman?.cleanup(), 60_000);

    it('runs as the user, with the deletions, ownership, modes and capability as the script left them', async () => {
      const load = await podman.podman(['load', '-i', archive]);
      expect(load.code, load.stderr).toBe(0);
      const ran = await podman.podman(['--runtime', 'runc', 'run', '--rm', '--network', 'none', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=4096:4096', 'localhost/baler-e2e/root:one']);
      expect(ran.code, ran.stderr).toBe(0);
      expect(ran.stdout.trim()).toBe(EXPECTED);
    }, 120_000);
  });
});

it('runs scripts in an image with no shell of its own, leaving the guest tools out', async () => {
  const digest = await uploadFile(service, await shellessTar());
  const result = await build({
    name: 'baler-e2e/shellless',
    contents: [{ tar: digest }],
    runAsRoot: 'echo made-by-script > /made; test ! -e /bin/sh',
    compression: 'none',
  });
  expect(result.status, JSON.stringify(result.error)).toBe('succeeded');
  const path = join(work, 'shellless.tar');
  await downloadImage(service, result.id, path);
  const listing = await run('sh', ['-c', `tar -xOf '${path}' --wildcards '*/layer.tar' | tar -tv`]);
  expect(listing.stdout).toMatch(/ made\n/);
  expect(listing.stdout).not.toMatch(/\.baler|bin\/sh/);
}, 120_000);

it('layers contents separately, with the scripts seeing them and their changes on top', async () => {
  const result = await build({
    name: 'baler-e2e/layered',
    fromImage: { build: baseId },
    layering: { maxLayers: 10 },
    contents: [
      { text: 'first\n', to: '/etc/first' },
      { text: 'second\n', to: '/etc/second' },
    ],
    runAsRoot: 'cat /etc/first /etc/second > /etc/both; rm /etc/first',
    compression: 'none',
  });
  expect(result.status, JSON.stringify(result.error)).toBe('succeeded');
  expect(result.result?.diffIds).toHaveLength(4); // base, two contents layers, the script's layer
  const path = join(work, 'layered.tar');
  await downloadImage(service, result.id, path);
  const top = await run('sh', ['-c', `tar -xOf '${path}' manifest.json`]);
  const layers = (JSON.parse(top.stdout) as Array<{ Layers: string[] }>)[0]?.Layers ?? [];
  const listing = await run('sh', ['-c', `tar -xOf '${path}' '${layers.at(-1)}' | tar -tv`]);
  expect(listing.stdout).toMatch(/etc\/both/);
  expect(listing.stdout).toMatch(/etc\/\.wh\.first/);
}, 120_000);

describe('limits', () => {
  const limited = (runAsRoot: string, limits: Record<string, number>) => ({
    name: 'baler-e2e/limits',
    fromImage: { build: baseId },
    runAsRoot,
    ...limits,
  });

  it.each([
    ['writes past diskSize', 'dd if=/dev/zero of=/big bs=1M count=200', { diskSize: 64 }, /disk full/, 60],
    ['allocates past memorySize', 'dd if=/dev/zero of=/dev/null bs=300M count=1', { memorySize: 128 }, /out of memory/, 60],
    ['sleeps past timeout', 'sleep 600', { timeout: 8 }, /timed out after 8 s/, 8],
    ['fork-bombs', 'bomb() { bomb | bomb & }; bomb; sleep 600', { timeout: 30 }, /too many processes/, 30],
  ])(
    'a script that %s fails with the limit named',
    async (_what, script, limits, reason, limitSeconds) => {
      const started = Date.now();
      const result = await build(limited(script, limits));
      expect(result.status).toBe('failed');
      expect(result.error?.detail).toMatch(reason);
      // Within the limit plus boot and a few seconds (TCG boots in ~3 s here).
      expect((Date.now() - started) / 1000).toBeLessThan(limitSeconds + 30);
      // The VM is gone and its temp files with it.
      expect(pidsMentioning(vmTmp)).toEqual([]);
      expect(await readdir(vmTmp)).toEqual([]);
    },
    180_000,
  );

  it('has no network but loopback: outbound connections fail at once', async () => {
    const started = Date.now();
    // Only a routing lookup and a loopback connection: no packet can leave a VM without a NIC.
    const result = await build(limited('ip -o link; ip route; echo routes-end; nc -w 3 192.0.2.1 80 </dev/null', { timeout: 60 }));
    expect(result.status).toBe('failed');
    expect(result.error?.detail).toMatch(/runAsRoot exited with code/);
    const log = await (await fetch(`${service.url}/v1/builds/${result.id}/logs`)).text();
    expect(log).toMatch(/1: lo/);
    expect(log).not.toMatch(/^2: /m);
    expect(log).toMatch(/routes-end/);
    expect(log.split('routes-end')[0]).not.toMatch(/default/);
    expect((Date.now() - started) / 1000).toBeLessThan(40);
  }, 120_000);
});
