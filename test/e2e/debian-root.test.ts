/**
 * Issue 13: a Debian root as users make it is used as contents as it is. The root is
 * `mmdebstrap --variant=minbase bookworm` from apt's mirror, cached by scripts/debian-root.mjs
 * (scripts/setup.mjs makes it; here it is a stat when cached). The tar goes up exactly as
 * mmdebstrap wrote it, /dev nodes included; a runAsRoot over it (real QEMU, TCG here) installs
 * a .deb built here with `dpkg-deb --build` and adds a user with `useradd`; the private dockerd
 * then runs the package's program as that user.
 *
 * Not checked here: byte-identical rebuilds. dpkg writes wall-clock times into
 * /var/log/dpkg.log, and the guest's clock runs during the scripts (seconds after the job's
 * clock), so two builds of this spec differ in that file.
 */
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDebianRoot } from '../../scripts/debian-root.mjs';
import { startDockerd, type Dockerd } from '../support/dockerd.ts';
import { run } from '../support/run.ts';
import { downloadImage, startService, submitBuild, uploadFile, waitForBuild, type BuildView, type Service } from '../support/service.ts';

/** The package's program: who runs it. */
const HELLO = '#!/bin/sh\necho "hello from $(id -un)"\n';

const RUN_AS_ROOT = `
dpkg -i /tmp/baler-hello.deb
rm /tmp/baler-hello.deb
useradd --create-home --shell /bin/sh --uid 1000 app
echo "as root: $(baler-hello)"
echo "dpkg says: $(dpkg-query -W -f='\${Status}' baler-hello)"
`;

/** Timings for the report (ms), printed at the end. */
const timings: Record<string, number> = {};

let service: Service;
let work: string;
let rootTar: string;
let deb: string;

/** A tiny package: /usr/bin/baler-hello, built by dpkg-deb (reproducibly: fixed owners and mtime). */
async function buildDeb(dir: string): Promise<string> {
  const pkg = join(dir, 'baler-hello');
  await mkdir(join(pkg, 'DEBIAN'), { recursive: true });
  await mkdir(join(pkg, 'usr/bin'), { recursive: true });
  await writeFile(join(pkg, 'DEBIAN/control'), 'Package: baler-hello\nVersion: 1.0\nArchitecture: all\nMaintainer: baler tests <tests@baler.invalid>\nDescription: says hello as whoever runs it\n');
  await writeFile(join(pkg, 'usr/bin/baler-hello'), HELLO);
  await chmod(join(pkg, 'usr/bin/baler-hello'), 0o755);
  const out = join(dir, 'baler-hello_1.0_all.deb');
  const built = await run('dpkg-deb', ['--root-owner-group', '--build', pkg, out], { env: { ...process.env, SOURCE_DATE_EPOCH: '0' } });
  expect(built.code, built.stderr).toBe(0);
  return out;
}

/** A build's step events (NDJSON replay of a finished build). */
async function steps(id: string): Promise<{ name: string; phase: string; durationMs?: number }[]> {
  const res = await fetch(`${service.url}/v1/builds/${id}/events`, { headers: { accept: 'application/x-ndjson' } });
  const events = (await res.text())
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { event: string; data: { name: string; phase: string; durationMs?: number } });
  return events.filter((e) => e.event === 'step').map((e) => e.data);
}

beforeAll(async () => {
  // Made once by scripts/setup.mjs (npm test's pretest); ~1.5 min from the mirror if not yet.
  let t = Date.now();
  rootTar = (await ensureDebianRoot()).tar;
  timings['root (mmdebstrap or cache)'] = Date.now() - t;
  work = await mkdtemp(join(tmpdir(), 'baler-debian-root-'));
  deb = await buildDeb(work);
  // No warm VM: one VM step here, and a waiting VM costs the shared CPU.
  service = await startService({ BALER_VM_POOL: '0' });
  t = Date.now();
  const digest = await uploadFile(service, rootTar);
  timings['upload root.tar'] = Date.now() - t;
  rootTar = digest;
}, 600_000);

afterAll(async () => {
  await service?.stop();
  if (work) await rm(work, { recursive: true, force: true });
  console.log(`debian-root timings (ms): ${JSON.stringify(timings)}`);
});

describe('an mmdebstrap root as contents, as it is', () => {
  let built: BuildView;
  let archive: string;

  beforeAll(async () => {
    const debDigest = await uploadFile(service, deb);
    const t = Date.now();
    const id = await submitBuild(service, {
      name: 'baler-e2e/debian',
      tag: 'hello',
      compression: 'none',
      contents: [
        { tar: rootTar, preserveOwners: true },
        { file: debDigest, to: '/tmp/baler-hello.deb' },
      ],
      runAsRoot: RUN_AS_ROOT,
      config: { Cmd: ['/usr/bin/baler-hello'], Env: ['PATH=/usr/local/bin:/usr/bin:/bin'] },
    });
    built = await waitForBuild(service, id, 900_000);
    timings['build (submit to end)'] = Date.now() - t;
    for (const s of await steps(id)) if (s.phase === 'finished' && s.durationMs !== undefined) timings[`step ${s.name}`] = (timings[`step ${s.name}`] ?? 0) + s.durationMs;
    expect(built.status, JSON.stringify(built.error)).toBe('succeeded');
    archive = join(work, 'debian.tar');
    await downloadImage(service, built.id, archive);
  }, 900_000);

  it("installs the package and adds the user in the VM, the scripts' output in the log", async () => {
    const log = await (await fetch(`${service.url}/v1/builds/${built.id}/logs`)).text();
    expect(log).toContain('as root: hello from root');
    expect(log).toContain('dpkg says: install ok installed');
    // The device policy's line: mmdebstrap's 8 nodes under /dev/ are dropped (its links and
    // directories there stay; a runtime mounts its own /dev over them).
    expect(log).toMatch(/dropped 8 device nodes under \/dev\//);
  });

  it('leaves no device nodes in the image', async () => {
    const listing = await run('sh', ['-c', `tar -xOf '${archive}' --wildcards '*/layer.tar' | tar -tvf -`]);
    expect(listing.code, listing.stderr).toBe(0);
    expect(listing.stdout).toMatch(/ usr\/bin\/baler-hello\n/);
    expect(listing.stdout.split('\n').filter((l) => /^[cb]/.test(l))).toEqual([]);
  });

  describe('under docker', () => {
    let dockerd: Dockerd;
    beforeAll(async () => {
      dockerd = await startDockerd();
      const load = await dockerd.docker(['load', '-i', archive]);
      expect(load.code, load.stderr).toBe(0);
    }, 180_000);
    afterAll(async () => dockerd?.stop(), 60_000);

    it("runs the package's program as the user useradd made", async () => {
      const ran = await dockerd.docker(['run', '--rm', '--user', 'app', 'baler-e2e/debian:hello']);
      expect(ran.code, ran.stderr).toBe(0);
      expect(ran.stdout).toBe('hello from app\n');
    }, 120_000);

    it("keeps dpkg's record, the user's home and Debian's owners", async () => {
      const check = [
        // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's format, not a template
        "dpkg-query -W -f='${Status} ${Version}\\n' baler-hello",
        'getent passwd app',
        "stat -c '%U:%G %a %n' /home/app /etc/shadow /usr/bin/baler-hello",
      ].join('; ');
      const ran = await dockerd.docker(['run', '--rm', '--user', 'app', 'baler-e2e/debian:hello', '/bin/sh', '-c', check]);
      expect(ran.code, ran.stderr).toBe(0);
      expect(ran.stdout).toBe(
        ['install ok installed 1.0', 'app:x:1000:1000::/home/app:/bin/sh', 'app:app 755 /home/app', 'root:shadow 640 /etc/shadow', 'root:root 755 /usr/bin/baler-hello', ''].join('\n'),
      );
    }, 120_000);
  });
});
