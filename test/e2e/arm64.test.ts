/**
 * An arm64 build end to end (issue 15's acceptance): a base root made here from Debian's
 * `busybox-static:arm64` (downloaded with apt into a private dir, the host's dpkg untouched), a
 * `runAsRoot` that adds a user and writes files, run in an arm64 microVM (TCG on an amd64 host)
 * by a worker serving linux/amd64 and linux/arm64. The image's busybox is an AArch64 ELF, its
 * root runs under QEMU user-mode emulation (`qemu-aarch64-static`, Debian's qemu-user-static)
 * and shows the user, files and owners the script made; built twice, it is the same bytes.
 */
import { copyFile, mkdir, mkdtemp, open, readdir, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VM_PLATFORMS } from '../../src/vm/platforms/index.ts';
import { sha256File } from '../support/images.ts';
import { run } from '../support/run.ts';
import { downloadImage, startService, submitBuild, uploadFile, waitForBuild, type BuildView, type Service } from '../support/service.ts';

const HAS_ARM64 = VM_PLATFORMS.some((p) => p.name === 'linux/arm64');
const QEMU_USER = '/usr/bin/qemu-aarch64-static';
/** ELF e_machine of AArch64. */
const EM_AARCH64 = 0xb7;
const APPLETS = ['sh', 'cat', 'ls', 'id', 'stat', 'rm', 'mkdir', 'touch', 'echo', 'chown', 'chmod', 'uname', 'true'];

const RUN_AS_ROOT = `
# Debian's static busybox has no adduser: add the user the way useradd would.
echo 'app:x:1000:1000::/home/app:/bin/sh' >> /etc/passwd
echo 'app:!:0:0:99999:7:::' >> /etc/shadow
echo 'app:x:1000:' >> /etc/group
mkdir -p /home/app && chown -R app:app /home/app && chmod 0700 /home/app
echo written-by-root > /home/app/note && chown app:app /home/app/note && chmod 0640 /home/app/note
uname -m > /etc/built-on
echo arm64 runAsRoot says hello
`;

let service: Service;
let work: string;
let baseDigest: string;

async function must(cmd: string, args: string[], opts: { cwd?: string } = {}): Promise<string> {
  const result = await run(cmd, args, opts);
  if (result.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${result.code}): ${result.stderr}`);
  return result.stdout;
}

/** Debian's busybox-static for arm64, fetched with apt into `dir` (its own lists and cache: the host's apt and dpkg state are not touched). */
async function downloadArm64Busybox(dir: string): Promise<string> {
  const opts = ['-o', 'APT::Architecture=arm64', '-o', 'APT::Architectures=arm64', '-o', `Dir::State::Lists=${dir}/lists`, '-o', `Dir::Cache=${dir}/cache`, '-o', 'APT::Sandbox::User=root'];
  await mkdir(join(dir, 'lists/partial'), { recursive: true });
  await mkdir(join(dir, 'cache/archives/partial'), { recursive: true });
  await must('apt-get', [...opts, '-qq', 'update']);
  await must('apt-get', [...opts, '-qq', 'download', 'busybox-static'], { cwd: dir });
  const deb = (await readdir(dir)).find((f) => f.startsWith('busybox-static_') && f.endsWith('_arm64.deb'));
  if (!deb) throw new Error(`apt-get download left no busybox-static arm64 .deb in ${dir}`);
  return join(dir, deb);
}

/** A root tar: the arm64 busybox and its applet links. */
async function arm64BaseTar(dir: string): Promise<string> {
  const deb = await downloadArm64Busybox(dir);
  const unpacked = join(dir, 'deb');
  await must('dpkg-deb', ['-x', deb, unpacked]);
  const root = join(dir, 'root');
  await mkdir(join(root, 'bin'), { recursive: true });
  await copyFile(join(unpacked, 'bin/busybox'), join(root, 'bin/busybox'));
  for (const applet of APPLETS) await symlink('busybox', join(root, 'bin', applet));
  const tar = join(dir, 'base.tar');
  await must('tar', ['--numeric-owner', '-C', root, '-cf', tar, '.']);
  return tar;
}

/** A docker-archive's layers extracted in order into `root` (owners kept); its config. */
async function extractImage(archive: string, dir: string): Promise<{ root: string; config: Record<string, unknown> }> {
  const unpacked = join(dir, 'archive');
  const root = join(dir, 'rootfs');
  await mkdir(unpacked, { recursive: true });
  await mkdir(root, { recursive: true });
  await must('tar', ['-xf', archive, '-C', unpacked]);
  const [manifest] = JSON.parse(await readFile(join(unpacked, 'manifest.json'), 'utf8')) as [{ Config: string; Layers: string[] }];
  for (const layer of manifest.Layers) await must('tar', ['--numeric-owner', '--same-owner', '-xpf', join(unpacked, layer), '-C', root]);
  return { root, config: JSON.parse(await readFile(join(unpacked, manifest.Config), 'utf8')) as Record<string, unknown> };
}

/** ELF e_machine of a file (little-endian ELF: bytes 18–19). */
async function elfMachine(path: string): Promise<number> {
  const fh = await open(path, 'r');
  try {
    const header = Buffer.alloc(20);
    await fh.read(header, 0, 20, 0);
    if (header.subarray(0, 4).toString('latin1') !== '\x7fELF') throw new Error(`${path} is not an ELF file`);
    return header.readUInt16LE(18);
  } finally {
    await fh.close();
  }
}

/**
 * One command of the image, run in its root under qemu-user: the emulator is copied in and
 * the root chrooted, so names resolve from the image's /etc. Each command is its own
 * emulator process (a busybox applet exec'd from the image's shell would need binfmt_misc).
 */
async function inImage(root: string, args: string[]): Promise<string> {
  await copyFile(QEMU_USER, join(root, '.qemu-aarch64-static'));
  return (await must('chroot', [root, '/.qemu-aarch64-static', '/bin/busybox', ...args])).trim();
}

const spec = {
  name: 'baler-e2e/arm64',
  tag: 'one',
  architecture: 'arm64',
  compression: 'none',
  shadowSetup: true,
  runAsRoot: RUN_AS_ROOT,
  config: { User: 'app', Cmd: ['/bin/sh'] },
};

describe.skipIf(!HAS_ARM64)(`an arm64 build${HAS_ARM64 ? '' : ' (skipped: no linux/arm64 VmPlatform in src/vm/platforms/ yet)'}`, () => {
  let built: BuildView;
  let archive: string;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'baler-arm64-e2e-'));
    // One warm VM per platform; the emulated arm64 pool starts at the first arm64 build (so that
    // one boots cold, the next takes a warm VM). Debug logs say which each step ran in.
    service = await startService({ BALER_VM_PLATFORMS: 'linux/amd64,linux/arm64', BALER_VM_POOL: '1', LOG_LEVEL: 'debug' });
    baseDigest = await uploadFile(service, await arm64BaseTar(join(work, 'base')));
    const id = await submitBuild(service, { ...spec, contents: [{ tar: baseDigest }] }, { noCache: true });
    built = await waitForBuild(service, id, 900_000);
    expect(built.status, JSON.stringify(built.error)).toBe('succeeded');
    archive = join(work, 'arm64-one.tar');
    await downloadImage(service, built.id, archive);
  }, 1_200_000);

  afterAll(async () => {
    await service?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('is taken by a worker that serves linux/arm64, and its script ran on an arm64 machine', async () => {
    const { workers } = (await (await fetch(`${service.url}/v1/workers`)).json()) as { workers: { platforms?: { platform: string; accel: string }[]; queues: string[] }[] };
    expect(workers[0]?.platforms?.map((p) => p.platform)).toEqual(['linux/amd64', 'linux/arm64']);
    expect(workers[0]?.queues).toContain('baler-builds-arm64-mem512');
    expect(await (await fetch(`${service.url}/v1/builds/${built.id}/logs`)).text()).toContain('arm64 runAsRoot says hello');
  });

  it("is an arm64 image: the config says arm64/v8, /bin/busybox is an AArch64 ELF, and under qemu-user it shows the script's user, files and owners", async () => {
    const { root, config } = await extractImage(archive, join(work, 'one'));
    expect(config).toMatchObject({ architecture: 'arm64', variant: 'v8', os: 'linux', config: { User: 'app' } });
    expect(await elfMachine(join(root, 'bin/busybox'))).toBe(EM_AARCH64);
    expect(await inImage(root, ['cat', '/etc/built-on'])).toBe('aarch64');
    expect(await inImage(root, ['id', 'app'])).toBe('uid=1000(app) gid=1000(app) groups=1000(app)');
    expect(await inImage(root, ['stat', '-c', '%U:%G %a %n', '/home/app', '/home/app/note'])).toBe('app:app 700 /home/app\napp:app 640 /home/app/note');
    expect(await inImage(root, ['cat', '/home/app/note'])).toBe('written-by-root');
  }, 120_000);

  /** Whether the build's VM step ran in a warm VM (the runner's debug line), or undefined when none is logged. */
  const pooledStep = (id: string): boolean | undefined => {
    const line = service
      .output()
      .split('\n')
      .find((l) => l.includes(`"buildId":"${id}"`) && l.includes('"msg":"VM step ended"'));
    return line === undefined ? undefined : (JSON.parse(line) as { pooled: boolean }).pooled;
  };

  it('gives the same bytes when built again without the caches, the second time in a warm arm64 VM the first build started', async () => {
    const id = await submitBuild(service, { ...spec, contents: [{ tar: baseDigest }] }, { noCache: true });
    const again = await waitForBuild(service, id, 900_000);
    expect(again.status, JSON.stringify(again.error)).toBe('succeeded');
    expect(again.id).not.toBe(built.id);
    expect(pooledStep(built.id)).toBe(false);
    expect(pooledStep(again.id)).toBe(true);
    expect(again.result?.archive.digest).toBe(built.result?.archive.digest);
    expect(again.result?.imageId).toBe(built.result?.imageId);
    const path = join(work, 'arm64-again.tar');
    await downloadImage(service, again.id, path);
    expect(await sha256File(path)).toBe(await sha256File(archive));
  }, 900_000);
});
