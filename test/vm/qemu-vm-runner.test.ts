/**
 * QemuVmRunner against real QEMU (TCG on machines without usable KVM), cold boots (no pool:
 * poolSize 0, the runner's default): what a script changes comes back as an overlay-form upper
 * tar, and every limit ends the VM with a reason naming it. Inputs are made with GNU tar from
 * directories created here; outputs are read with tar-stream, PAX xattrs included. The pool of
 * warm VMs is tested in vm-pool.test.ts.
 */
import { spawnSync } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { QemuVmRunner } from '../../src/vm/qemu-vm-runner.ts';
import { VmCancelledError, type VmJob, type VmResult } from '../../src/vm/vm-runner.ts';
import { CAP, CLOCK, gnuTar, job, makeLowerTar, makeUpperTar, processesMentioning, readTar, type Entry } from './support.ts';

let work: string;
let vmTmp: string;
let runner: QemuVmRunner;
let lowerTar: string;
let upperTar: string;
const open: VmResult[] = [];

async function run(j: VmJob): Promise<{ result: VmResult; log: string; seconds: number }> {
  let log = '';
  const t0 = Date.now();
  const result = await runner.run({ ...j, onLog: (t) => (log += t) });
  open.push(result);
  return { result, log, seconds: (Date.now() - t0) / 1000 };
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'baler-test-vm-runner-'));
  vmTmp = join(work, 'vm-tmp');
  await mkdir(vmTmp);
  runner = new QemuVmRunner({ tmpDir: vmTmp, poolSize: 0 });
  await runner.assets(); // built into the cache on first use (downloads the kernel package once)
  lowerTar = await makeLowerTar(work);
  upperTar = await makeUpperTar(work);
});

afterEach(async () => {
  while (open.length) await open.pop()?.dispose();
  expect(runner.warmVms()).toEqual([]);
  expect(processesMentioning(vmTmp)).toEqual([]);
  expect(await readdir(vmTmp)).toEqual([]);
});

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe('QemuVmRunner', () => {
  it('returns what runAsRoot and extraCommands changed as an overlay-form upper tar', async () => {
    const runAsRoot = [
      'test ! -e /etc/gone', // layer 1's whiteout holds
      'test "$(ls /opq)" = from1', // layer 1's opaque dir holds
      'test "$(cat /etc/motd)" = hi', // this build's contents are in
      'echo written > /etc/new',
      'rm /etc/a',
      'rm -rf /some/dir && mkdir /some/dir && touch /some/dir/new',
      'mkdir /home/alice && chown 1000:1000 /home/alice',
      'chmod 4755 /usr/bin/tool',
      'chmod 0750 /bin/prog', // copy-up keeps security.capability
      // The guest's setcap/getcap work in an image with no libc of its own.
      'cp /bin/prog /bin/capped && setcap cap_net_bind_service=+ep /bin/capped',
      'echo "getcap: $(getcap /bin/capped)"',
      'grep -q "^root:" /etc/passwd && test -f /etc/shadow && test -f /etc/login.defs', // shadowSetup
      'test -x /.baler/bin/busybox',
      'echo "clock=$(date +%s)"',
      'echo "path=$PATH"',
      'echo "to stderr" >&2',
    ].join('\n');
    const extraCommands = ['test -f etc/new', 'test ! -e etc/a || test -c etc/a', 'ln -s /etc/new link-to-new', 'echo extra > extra-file'].join('\n');
    const { result, log } = await run(
      job({
        lowerTar: async () => createReadStream(lowerTar),
        lowerCount: 2,
        upperTar: async () => createReadStream(upperTar),
        runAsRoot,
        extraCommands,
        shadowSetup: true,
      }),
    );
    expect(result.outcome, log).toEqual({ ok: true });

    // The log is the scripts' output only: no kernel or init messages.
    expect(log).toContain('to stderr');
    expect(log).toContain('path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/.baler/bin');
    expect(log).not.toMatch(/baler-init|reboot:|\[ *\d+\.\d+\]/);
    const clock = Number(/clock=(\d+)/.exec(log)?.[1]);
    expect(clock).toBeGreaterThanOrEqual(CLOCK);
    expect(clock).toBeLessThan(CLOCK + 30);

    const entries = await readTar(await result.openUpperTar());
    const get = (name: string): Entry => {
      const e = entries.get(name);
      if (!e) throw new Error(`${name} missing from the upper tar: ${[...entries.keys()].join(' ')}`);
      return e;
    };
    expect(get('etc/new').data.toString()).toBe('written\n');
    // Deletion of a lower file: a 0/0 character device.
    expect(get('etc/a')).toMatchObject({ type: 'character-device', devmajor: 0, devminor: 0 });
    // rm -rf + mkdir: an opaque dir holding only the new file.
    expect(get('some/dir').xattrs.get('trusted.overlay.opaque')?.toString()).toBe('y');
    expect(get('some/dir/new').type).toBe('file');
    expect(entries.has('some/dir/x')).toBe(false);
    expect(get('home/alice')).toMatchObject({ type: 'directory', uid: 1000, gid: 1000 });
    expect(get('usr/bin/tool').mode & 0o7777).toBe(0o4755);
    expect(get('bin/prog').mode & 0o7777).toBe(0o750);
    expect(get('bin/prog').xattrs.get('security.capability')).toEqual(CAP);
    expect(get('bin/capped').xattrs.get('security.capability')).toEqual(CAP);
    expect(log).toContain('getcap: /bin/capped cap_net_bind_service=ep');
    // The build's contents come back too, their capability intact.
    expect(get('usr/local/bin/capped').xattrs.get('security.capability')).toEqual(CAP);
    expect(get('etc/motd.link')).toMatchObject({ type: 'symlink', linkname: 'motd' });
    for (const f of ['etc/passwd', 'etc/shadow', 'etc/group', 'etc/gshadow', 'etc/pam.d/other', 'etc/login.defs']) get(f);
    expect(get('etc/passwd').data.toString()).toBe('root:x:0:0::/root:/bin/sh\n');
    // extraCommands ran in the layer dir.
    expect(get('link-to-new')).toMatchObject({ type: 'symlink', linkname: '/etc/new' });
    expect(get('extra-file').data.toString()).toBe('extra\n');
    // Untouched lower files stay out; so do the guest's busybox and the mount points.
    expect(entries.has('etc/gone')).toBe(false);
    expect(entries.has('opq/from1')).toBe(false);
    for (const name of entries.keys()) expect(name).not.toMatch(/^(\.baler|proc|dev|sys)(\/|$)/);
  });

  it('runs scripts in an image without a shell, with only a loopback interface', async () => {
    const runAsRoot = [
      'test ! -e /bin/sh && test ! -e /usr/bin',
      'cat /data/hello',
      'echo "links=$(ip -o link show | awk -F": " \'{print $2}\' | tr "\\n" " ")"',
      'echo "routes=$(ip route show | tr "\\n" " ")"',
      'ip route show | grep -q default && exit 10',
      'if nc 127.0.0.1 9 </dev/null 2>/tmp/nc.err; then exit 11; fi',
      'echo "nc: $(cat /tmp/nc.err)"',
      'rm /tmp/nc.err',
      'mkdir /made && echo yes > /made/here',
    ].join('\n');
    const dataTar = join(work, 'data.tar');
    const D = join(work, 'data');
    await mkdir(join(D, 'data'), { recursive: true });
    await mkdir(join(D, 'tmp'), { mode: 0o1777 });
    await writeFile(join(D, 'data/hello'), 'hello from the contents\n');
    gnuTar(D, dataTar, ['data', 'tmp']);
    const { result, log } = await run(job({ upperTar: async () => createReadStream(dataTar), runAsRoot }));
    expect(result.outcome, log).toEqual({ ok: true });
    expect(log).toContain('hello from the contents');
    expect(log).toMatch(/links=lo $/m);
    expect(log).toMatch(/routes=\s*$/m);
    expect(log).toMatch(/nc: .*Connection refused/);
    const entries = await readTar(await result.openUpperTar());
    expect(entries.get('made/here')?.data.toString()).toBe('yes\n');
    expect([...entries.keys()].filter((n) => /^(\.baler|proc|dev|sys)(\/|$)/.test(n))).toEqual([]);
  });

  it('names the script and its exit code when it fails', async () => {
    const a = await run(job({ runAsRoot: 'echo before\nexit 3\necho after' }));
    expect(a.result.outcome).toEqual({ ok: false, reason: 'runAsRoot exited with code 3' });
    expect(a.log).toContain('before');
    expect(a.log).not.toContain('after');
    await expect(a.result.openUpperTar()).rejects.toThrow(/no upper tar/);
    // set -e: a failing command ends the script.
    const b = await run(job({ extraCommands: 'false\necho after' }));
    expect(b.result.outcome).toEqual({ ok: false, reason: 'extraCommands exited with code 1' });
    expect(b.log).not.toContain('after');
  });

  it('fails with "disk full" when a script writes past diskSize', async () => {
    const { result, log, seconds } = await run(job({ runAsRoot: 'dd if=/dev/zero of=/big bs=1M count=64', limits: { diskMiB: 16, memoryMiB: 256, timeoutSeconds: 60 } }));
    expect(result.outcome.ok, log).toBe(false);
    expect(!result.outcome.ok && result.outcome.reason).toMatch(/^disk full\b/);
    expect(seconds).toBeLessThan(30);
  });

  it('fails with "out of memory" when a script allocates past memorySize', async () => {
    const { result, log, seconds } = await run(
      job({
        runAsRoot: 'dd if=/dev/zero of=/dev/null bs=300M count=1\necho survived',
        limits: { diskMiB: 64, memoryMiB: 192, timeoutSeconds: 60 },
      }),
    );
    expect(result.outcome.ok, log).toBe(false);
    expect(!result.outcome.ok && result.outcome.reason).toMatch(/^out of memory\b/);
    expect(log).not.toContain('survived');
    expect(seconds).toBeLessThan(30);
  });

  it('kills the VM at the timeout', async () => {
    const { result, seconds } = await run(job({ runAsRoot: 'echo sleeping; sleep 600', limits: { diskMiB: 64, memoryMiB: 256, timeoutSeconds: 8 } }));
    expect(result.outcome).toEqual({ ok: false, reason: 'timed out after 8 s' });
    expect(seconds).toBeGreaterThanOrEqual(8);
    expect(seconds).toBeLessThan(8 + 5);
  });

  it('ends a fork bomb', async () => {
    const { result, log, seconds } = await run(
      // The sleep keeps the script (PID 1 of its namespace) alive: its exit would end the bomb.
      job({ runAsRoot: 'bomb() { bomb | bomb & }\nbomb\nsleep 600', limits: { diskMiB: 64, memoryMiB: 256, timeoutSeconds: 45 } }),
    );
    expect(result.outcome.ok, log.slice(-2000)).toBe(false);
    expect(!result.outcome.ok && result.outcome.reason).toMatch(/^(too many processes|out of memory)\b/);
    expect(seconds).toBeLessThan(30); // well before the timeout
  });

  it('is cancelled by its AbortSignal: the VM is killed and run() rejects', async () => {
    const controller = new AbortController();
    let log = '';
    const t0 = Date.now();
    const pending = runner.run(job({ runAsRoot: 'echo started; sleep 600', onLog: (t) => (log += t), signal: controller.signal, limits: { diskMiB: 64, memoryMiB: 256, timeoutSeconds: 120 } }));
    // Abort once the script runs (the VM is up), so the kill is what ends it.
    const started = Date.now();
    while (!log.includes('started') && Date.now() - started < 30_000) await new Promise((r) => setTimeout(r, 50));
    expect(log).toContain('started');
    controller.abort();
    await expect(pending).rejects.toBeInstanceOf(VmCancelledError);
    expect(Date.now() - t0).toBeLessThan(40_000);
    // Already aborted: rejects at once without starting anything.
    await expect(runner.run(job({ runAsRoot: 'true', signal: controller.signal }))).rejects.toBeInstanceOf(VmCancelledError);
  });

  it('sweeps temp dirs whose worker died, and keeps live ones', async () => {
    const dead = spawnSync('sh', ['-c', 'echo $$'], { encoding: 'utf8' }).stdout.trim(); // exited: its pid is free
    await mkdir(join(vmTmp, 'baler-vm-dead'));
    await writeFile(join(vmTmp, 'baler-vm-dead', 'owner'), `${dead}\n`);
    await mkdir(join(vmTmp, 'baler-vm-live'));
    await writeFile(join(vmTmp, 'baler-vm-live', 'owner'), `${process.pid}\n`);
    expect(await QemuVmRunner.sweepStaleTempDirs(vmTmp)).toEqual([join(vmTmp, 'baler-vm-dead')]);
    expect(await readdir(vmTmp)).toEqual(['baler-vm-live']);
    await rm(join(vmTmp, 'baler-vm-live'), { recursive: true });
  });

  it('rejects a base image tar that is not a tar, starting no VM', async () => {
    const bad = join(work, 'bad.tar');
    await writeFile(bad, 'this is not a tar'.repeat(100));
    await expect(runner.run(job({ lowerTar: async () => createReadStream(bad), lowerCount: 1, runAsRoot: 'true' }))).rejects.toThrow(/squashfs/);
    expect(await readFile(bad, 'utf8')).toContain('not a tar');
  });
});
