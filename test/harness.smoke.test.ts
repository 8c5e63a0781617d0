/**
 * Proves the real-engine test harness works on this machine, independently of baler:
 * build a busybox-only docker-archive with podman, then load + run it in a private
 * dockerd and a private podman, and check that both leave nothing behind.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, existsSync, mkdirSync, statSync, symlinkSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dockerAvailable, startDockerd, type Dockerd } from './support/dockerd.ts';
import { podmanAvailable, startPodman, type Podman } from './support/podman.ts';
import { mountsUnder, pidsMentioning, run } from './support/run.ts';

const TIMEOUT = 180_000;
const IMAGE = 'localhost/baler-harness-smoke:latest';
const BUSYBOX = '/bin/busybox'; // from busybox-static

const enabled = dockerAvailable() && podmanAvailable() && existsSync(BUSYBOX);

function expectOk(r: { stdout: string; stderr: string; code: number }, what: string): void {
  expect(r.code, `${what} failed:\n${r.stdout}\n${r.stderr}`).toBe(0);
}

// Never skipped: `npm test` installs the engines, and a missing one must fail loudly.
describe('real-engine harness (docker + podman)', () => {
  let work = '';
  let archive = '';
  let dockerd: Dockerd | undefined;
  let podman: Podman | undefined;
  const timings: Record<string, number> = {};
  const timed = async <T>(name: string, f: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    try {
      return await f();
    } finally {
      timings[name] = Math.round(performance.now() - t0);
    }
  };

  beforeAll(async () => {
    expect(enabled, 'docker.io, podman, runc and busybox-static must be installed (npm test installs them)').toBe(true);
    work = await mkdtemp(join(tmpdir(), 'baler-smoke-'));
    // rootfs: /bin/busybox + /bin/sh -> busybox
    const rootfs = join(work, 'rootfs');
    mkdirSync(join(rootfs, 'bin'), { recursive: true });
    copyFileSync(BUSYBOX, join(rootfs, 'bin', 'busybox'));
    symlinkSync('busybox', join(rootfs, 'bin', 'sh'));
    const rootfsTar = join(work, 'rootfs.tar');
    expectOk(await run('/bin/tar', ['-C', rootfs, '--numeric-owner', '-cf', rootfsTar, '.']), 'tar');

    [dockerd, podman] = await Promise.all([timed('dockerd start', () => startDockerd()), timed('podman start', () => startPodman())]);

    // image tar built by a real tool (podman import + save), not by baler
    expectOk(await podman.podman(['import', rootfsTar, IMAGE]), 'podman import');
    archive = join(work, 'image.tar');
    expectOk(await podman.podman(['save', '--format', 'docker-archive', '-o', archive, IMAGE]), 'podman save');
    expectOk(await podman.podman(['rmi', IMAGE]), 'podman rmi');
    expect(statSync(archive).size).toBeGreaterThan(1_000_000);
  }, TIMEOUT);

  afterAll(async () => {
    await Promise.allSettled([dockerd?.stop(), podman?.cleanup()]);
    if (work) await rm(work, { recursive: true, force: true });
    console.log('harness timings (ms):', JSON.stringify(timings));
  }, TIMEOUT);

  it(
    'docker: load + run --network none prints hello',
    async () => {
      const d = dockerd!;
      const load = await timed('docker load', () => d.docker(['load', '-i', archive]));
      expectOk(load, 'docker load');
      expect(load.stdout).toContain(IMAGE);
      const r = await timed('docker run', () => d.docker(['run', '--rm', '--network', 'none', IMAGE, '/bin/busybox', 'echo', 'hello']));
      expectOk(r, 'docker run');
      expect(r.stdout.trim()).toBe('hello');
      // defaults injected by the harness: no network, no pulls
      const r2 = await d.docker(['run', '--rm', IMAGE, '/bin/sh', '-c', 'ls /sys/class/net']);
      expectOk(r2, 'docker run (defaults)');
      expect(r2.stdout.trim()).toBe('lo');
      expect((await d.docker(['ps', '-aq'])).stdout.trim()).toBe('');
    },
    TIMEOUT,
  );

  it(
    'podman: load + run --network none prints hello',
    async () => {
      const p = podman!;
      const load = await timed('podman load', () => p.podman(['load', '-i', archive]));
      expectOk(load, 'podman load');
      expect(load.stdout).toContain(IMAGE);
      const r = await timed('podman run', () => p.podman(['run', '--rm', '--network', 'none', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=4096:4096', IMAGE, '/bin/busybox', 'echo', 'hello']));
      expectOk(r, 'podman run');
      expect(r.stdout.trim()).toBe('hello');
      const r2 = await p.podman(['run', '--rm', IMAGE, '/bin/sh', '-c', 'ls /sys/class/net; ulimit -n']);
      expectOk(r2, 'podman run (defaults)');
      expect(r2.stdout.trim().split('\n')).toEqual(['lo', '1024']);
      expect((await p.podman(['ps', '-aq'])).stdout.trim()).toBe('');
    },
    TIMEOUT,
  );

  it(
    'stop/cleanup leave no processes, mounts or temp dirs',
    async () => {
      const d = dockerd!;
      const p = podman!;
      // a running container must not block teardown
      expectOk(await d.docker(['run', '-d', IMAGE, '/bin/busybox', 'sleep', '600']), 'docker run -d');
      expectOk(await p.podman(['run', '-d', IMAGE, '/bin/busybox', 'sleep', '600']), 'podman run -d');
      await Promise.all([timed('dockerd stop', () => d.stop()), timed('podman cleanup', () => p.cleanup())]);
      for (const root of [d.root, p.root]) {
        expect(existsSync(root), root).toBe(false);
        expect(pidsMentioning(root + '/'), root).toEqual([]);
        expect(mountsUnder(root), root).toEqual([]);
      }
    },
    TIMEOUT,
  );
});
