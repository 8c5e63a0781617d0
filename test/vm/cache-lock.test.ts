/**
 * The asset cache's lock (src/vm/assets/cache-lock.ts): holders take turns, a wait is bounded
 * and says who holds the lock, a holder that dies leaves no lock behind; and two asset builds of
 * one platform at once in one cache (seeded with the kernel package the shared cache already
 * downloaded: nothing is fetched) build once, the second finding the first's result.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acquireCacheLock, CacheLockTimeoutError, withCacheLock } from '../../src/vm/assets/cache-lock.ts';
import { ensureVmAssets } from '../../src/vm/assets/vm-assets.ts';
import { amd64 } from '../../src/vm/platforms/amd64.ts';

const LOCK_MODULE = fileURLToPath(new URL('../../src/vm/assets/cache-lock.ts', import.meta.url));
const SHARED_DOWNLOADS = resolve(process.env.BALER_VM_CACHE || fileURLToPath(new URL('../../.cache/vm', import.meta.url)), 'downloads');

let work: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'baler-test-cache-lock-'));
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('the asset cache lock', () => {
  it('lets one holder in at a time, the next as soon as it is released', async () => {
    const path = join(work, 'turns', '.lock');
    const order: string[] = [];
    const first = withCacheLock(path, { waitMs: 10_000, what: 'first' }, async () => {
      order.push('first in');
      await sleep(500);
      order.push('first out');
    });
    await sleep(100);
    const second = withCacheLock(path, { waitMs: 10_000, what: 'second' }, async () => {
      order.push('second in');
    });
    await Promise.all([first, second]);
    expect(order).toEqual(['first in', 'first out', 'second in']);
  });

  it('gives up after the wait it was given, naming the lock and its holder', async () => {
    const path = join(work, 'bounded', '.lock');
    const release = await acquireCacheLock(path, { waitMs: 1000, what: 'building the linux/arm64 VM assets' });
    const logged: string[] = [];
    const t0 = Date.now();
    const err = await acquireCacheLock(path, { waitMs: 1500, what: 'waiting', log: (m) => logged.push(m) }).then(
      () => undefined,
      (e: unknown) => e,
    );
    const waited = Date.now() - t0;
    await release();
    expect(err).toBeInstanceOf(CacheLockTimeoutError);
    expect((err as Error).message).toMatch(new RegExp(`gave up after 2 s waiting for the lock ${path} \\(held by pid ${process.pid} on .*, building the linux/arm64 VM assets since `));
    expect(waited).toBeGreaterThanOrEqual(1400);
    expect(waited).toBeLessThan(5000);
    // Whoever waits longer than a moment is told why.
    expect(logged).toEqual([expect.stringMatching(/^waiting for .*: held by pid \d+/)]);
    // Free again: taken at once.
    await (await acquireCacheLock(path, { waitMs: 100, what: 'after' }))();
  });

  it('is free again when its holder is killed', async () => {
    const path = join(work, 'killed', '.lock');
    const code = `import { acquireCacheLock } from ${JSON.stringify(LOCK_MODULE)}; await acquireCacheLock(${JSON.stringify(path)}, { waitMs: 5000, what: 'dying' }); console.log('held'); setInterval(() => {}, 1000);`;
    const holder = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      holder.stdout.on('data', (d: Buffer) => d.toString().includes('held') && resolve());
      holder.once('exit', (c) => reject(new Error(`holder exited (${c})`)));
    });
    await expect(acquireCacheLock(path, { waitMs: 300, what: 'too early' })).rejects.toThrow(CacheLockTimeoutError);
    holder.kill('SIGKILL');
    const release = await acquireCacheLock(path, { waitMs: 10_000, what: 'after the holder died' });
    await release();
  });
});

describe.runIf(process.arch === 'x64' && existsSync(SHARED_DOWNLOADS))('two builds of the same VM assets at once', () => {
  it('build once: the second waits for the first and finds its assets', async () => {
    const kernels = (await readdir(SHARED_DOWNLOADS)).filter((f) => f.includes('-cloud-amd64_') && f.endsWith('.deb'));
    if (kernels.length === 0) return;
    const cacheDir = join(work, 'vm-cache');
    await mkdir(join(cacheDir, 'downloads'), { recursive: true });
    for (const deb of kernels) await symlink(join(SHARED_DOWNLOADS, deb), join(cacheDir, 'downloads', deb));
    const logs: string[][] = [[], []];
    const t0 = Date.now();
    const built = await Promise.all(logs.map((into) => ensureVmAssets({ cacheDir, platform: amd64, log: (m) => into.push(m) })));
    const seconds = (Date.now() - t0) / 1000;
    expect(built[1]).toEqual(built[0]);
    expect(existsSync(built[0]?.manifest ?? '')).toBe(true);
    // Exactly one of them built; the other waited (and, after a moment, said so).
    const building = logs.map((l) => l.filter((m) => m.startsWith('building VM assets')).length);
    expect(building.sort()).toEqual([0, 1]);
    expect((await readdir(cacheDir)).filter((n) => n.startsWith('.build-'))).toEqual([]);
    console.log(`two concurrent amd64 asset builds from the cached kernel package: ${seconds.toFixed(1)} s`);
  }, 180_000);
});
