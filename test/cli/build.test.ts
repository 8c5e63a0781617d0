/**
 * `baler build` against the real service (src/main.ts with its worker, a private Redis, QEMU for
 * runAsRoot) with examples/hello: plain lines through pipes, the image `docker load`ed and run in
 * a private dockerd; progress bars in a real pseudo-terminal (util-linux `script`); a failing
 * build and a refused spec with their problem details; and a server without the events route.
 */
import { createHash } from 'node:crypto';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/redis-server.ts';
import { baler, balerInPty } from '../support/cli.ts';
import { startDockerd, type Dockerd } from '../support/dockerd.ts';
import { startEventsProxy, type EventsProxy } from '../support/events-proxy.ts';
import { startService, type Service } from '../support/service.ts';

const EXAMPLE = fileURLToPath(new URL('../../examples/hello', import.meta.url));
const SPEC = join(EXAMPLE, 'spec.json');
// Escape sequences cli-progress moves the cursor with, and its bar characters.
const CURSOR_MOVES = /\x1b\[\d*[AG]/;
const BAR = /[█░]{10,}/;

let service: Service;
let work: string;

beforeAll(async () => {
  service = await startService({ BALER_EVENTS_HEARTBEAT_MS: '200' });
  work = await mkdtemp(join(tmpdir(), 'baler-cli-'));
});
afterAll(async () => {
  await service?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

async function sha256(path: string): Promise<string> {
  return `sha256:${createHash('sha256')
    .update(await readFile(path))
    .digest('hex')}`;
}

describe('without a terminal', () => {
  let dockerd: Dockerd;
  beforeAll(async () => {
    dockerd = await startDockerd();
  });
  afterAll(async () => dockerd?.stop(), 60_000);

  it('builds the example into an archive that docker loads and runs, printing plain lines', async () => {
    const out = join(work, 'hello.tar');
    const { code, stdout, stderr } = await baler(service.url, ['build', SPEC, '-o', out, '--wait', '--no-cache']);
    expect(code, stderr).toBe(0);
    const id = stdout.trim();
    expect(id).toMatch(/^[a-z2-7]{26}$/); // only the id on stdout
    expect(stderr).not.toMatch(CURSOR_MOVES);
    expect(stderr).not.toMatch(BAR);
    expect(stderr).not.toContain('\r');
    expect(stderr).toMatch(/^upload \.\/rootfs: done, /m);
    expect(stderr).toMatch(/^upload \/bin\/busybox: done, 1\.\d MiB/m);
    expect(stderr).toContain(`build ${id}: queued\n`);
    expect(stderr).toContain('installing busybox applets\n'); // the build log, from the VM
    expect(stderr).toMatch(/^step \d+ vm \(linux\/amd64\): started\n/m); // steps come as events
    expect(stderr).toMatch(/^step \d+ vm \(linux\/amd64\): finished in [\d.]+ s$/m);
    expect(stderr).toMatch(new RegExp(`^build ${id}: succeeded in [\\d.]+ s, image sha256:[a-f0-9]{64}$`, 'm'));
    expect(stderr).toContain(`image written to ${out}\n`);

    const status = await baler(service.url, ['status', id, '--json']);
    const build = JSON.parse(status.stdout) as { result: { archive: { digest: string } } };
    expect(await sha256(out)).toBe(build.result.archive.digest);

    const load = await dockerd.docker(['load', '-i', out]);
    expect(load.code, load.stderr).toBe(0);
    expect(load.stdout).toContain('Loaded image: baler-example/hello:1.0');
    const ran = await dockerd.docker(['run', '--rm', 'baler-example/hello:1.0']);
    expect(ran.code, ran.stderr).toBe(0);
    expect(ran.stdout).toMatch(/^Hello from an image baler built\.\nbuilt at: step script\n\d{3} commands in \/bin\n$/);
  }, 300_000);

  it('without --wait only submits, and prints the id', async () => {
    const { code, stdout, stderr } = await baler(service.url, ['build', SPEC]);
    expect(code, stderr).toBe(0);
    expect(stdout).toMatch(/^[a-z2-7]{26}\n$/);
    expect(stderr).toMatch(/^build [a-z2-7]{26}: (queued|succeeded \(cached, identical to build [a-z2-7]{26}\))$/m);
  });
});

describe('in a terminal', () => {
  it('shows progress bars, and finished uploads, steps and the download as lines above them', async () => {
    // A context of its own with a file no other test uploads: the upload really happens.
    const context = join(work, 'tty');
    await cp(EXAMPLE, context, { recursive: true });
    await writeFile(join(context, 'rootfs/etc/motd'), `terminal ${Date.now()}\n`);
    const out = join(work, 'tty.tar');
    const { code, stdout } = await balerInPty(service.url, ['build', join(context, 'spec.json'), '-o', out]);
    expect(code, stdout).toBe(0);
    expect(stdout).toMatch(CURSOR_MOVES);
    // (An upload or download this small may finish between two frames (10 a second), so only
    // the build's bar, drawn for the seconds the VM step takes, is sure to be seen.)
    expect(stdout).toMatch(/upload \.\/rootfs: 4\.\d KiB \(sha256:[a-f0-9]{12}…\)/);
    expect(stdout).toContain('installing busybox applets');
    expect(stdout).toMatch(new RegExp(`build \\|${BAR.source}\\| +\\d+% step \\d+ \\w+ \\(linux\\/amd64\\) (started|finished|cached)`));
    expect(stdout).toMatch(/step \d+ vm \(linux\/amd64\): finished in [\d.]+ s/);
    expect(stdout).toMatch(/build [a-z2-7]{26}: succeeded in/);
    expect(stdout).toMatch(/download .*tty\.tar: 1\.\d MiB \(sha256:[a-f0-9]{64}\)/);
    expect((await readFile(out)).length).toBeGreaterThan(1_000_000);
  }, 300_000);
});

describe('failures', () => {
  it('a build that fails: exit code 1, its log and the problem detail', async () => {
    const spec = join(work, 'fails.json');
    await writeFile(spec, JSON.stringify({ name: 'fails', runAsRoot: 'echo about to fail\nexit 3\n' }));
    const { code, stdout, stderr } = await baler(service.url, ['build', spec, '--wait']);
    expect(code).toBe(1);
    const id = stdout.trim();
    expect(stderr).toContain('about to fail\n');
    expect(stderr).toContain(`build ${id}: failed\nerror: Build failed (422): runAsRoot exited with code 3\n`);
  }, 300_000);

  it('a spec the server refuses: exit code 1, title, status, detail and each error with its path', async () => {
    const spec = join(work, 'refused.json');
    await writeFile(spec, JSON.stringify({ name: 'Not Lowercase', contents: [{ text: 'x', to: '/x', bogus: true }] }));
    const { code, stdout, stderr } = await baler(service.url, ['build', spec, '--wait']);
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr).toMatch(/^error: Bad Request \(400\): invalid build spec: /m);
    expect(stderr).toContain("\n  /name: name must be lowercase ('Not Lowercase')\n");
    expect(stderr).toContain('\n  /contents/0/bogus: unknown field\n');
  });

  it('a local path that does not exist: says which, relative to what', async () => {
    const spec = join(work, 'missing.json');
    await writeFile(spec, JSON.stringify({ name: 'missing', contents: [{ tar: './nowhere' }] }));
    const { code, stderr } = await baler(service.url, ['build', spec]);
    expect(code).toBe(1);
    expect(stderr).toBe("error: tar './nowhere': no such file (paths are relative to the context directory)\n");
  });

  it('no server: exit code 1 and where it tried', async () => {
    const port = await freePort(); // free: nothing listens there
    const { code, stderr } = await baler(`http://127.0.0.1:${port}`, ['status', 'aaaaaaaaaaaaaaaaaaaaaaaaaa']);
    expect(code).toBe(1);
    expect(stderr).toBe(`error: cannot reach http://127.0.0.1:${port}: ECONNREFUSED\n`);
  });
});

describe('a server without the events route', () => {
  let proxy: EventsProxy;
  beforeAll(async () => {
    proxy = await startEventsProxy(service.url, 'missing');
  });
  afterAll(async () => proxy?.close());

  it('is followed by polling the build and its log', async () => {
    const spec = join(work, 'polled.json');
    await writeFile(spec, JSON.stringify({ name: 'polled', runAsRoot: 'echo polled log line\n' }));
    const { code, stdout, stderr } = await baler(proxy.url, ['build', spec, '--wait', '--no-cache']);
    expect(code, stderr).toBe(0);
    expect(proxy.eventRequests).toHaveLength(1);
    const id = stdout.trim();
    expect(stderr).toContain('polled log line\n');
    expect(stderr).toMatch(new RegExp(`^build ${id}: succeeded in`, 'm'));
    expect(stderr).not.toMatch(/^step /m); // steps only come as events
  }, 300_000);
});

describe('an events stream that keeps breaking off', () => {
  let proxy: EventsProxy;
  beforeAll(async () => {
    proxy = await startEventsProxy(service.url, { cutAfterLines: 3 });
  });
  afterAll(async () => proxy?.close());

  it('is resumed with Last-Event-ID: every log line once, every step, the end', async () => {
    const spec = join(work, 'resumed.json');
    const lines = ['first', 'second', 'third', 'fourth', 'fifth'];
    // Then quiet for 14 s: the heartbeats (every 200 ms here) are cut off too, many times
    // over, and each resumed connection that worked counts as one that worked.
    await writeFile(spec, JSON.stringify({ name: 'resumed', runAsRoot: [...lines.map((l) => `echo ${l} line; sleep 0.2`), 'sleep 14'].join('\n') }));
    const { code, stdout, stderr } = await baler(proxy.url, ['build', spec, '--wait', '--no-cache']);
    expect(code, stderr).toBe(0);
    const id = stdout.trim();
    // More cuts than the CLI's five reconnects in a row: it kept following as long as data came.
    expect(proxy.eventRequests.length).toBeGreaterThan(8);
    expect(proxy.eventRequests[0]).toBeUndefined();
    expect(proxy.eventRequests.slice(1).every((last) => /^\d+-\d+$/.test(last ?? ''))).toBe(true);
    for (const line of lines) expect(stderr.split(`${line} line\n`)).toHaveLength(2);
    expect(stderr.match(/^step \d+ vm \(linux\/amd64\): (started|finished)/gm), stderr).toHaveLength(2);
    expect(stderr).toMatch(new RegExp(`^build ${id}: succeeded in`, 'm'));
  }, 300_000);
});

describe('an events stream dropped right after the final state', () => {
  let proxy: EventsProxy;
  beforeAll(async () => {
    proxy = await startEventsProxy(service.url, 'cutAfterFinal');
  });
  afterAll(async () => proxy?.close());

  it('ends the build there: nothing is left to resume', async () => {
    const spec = join(work, 'dropped.json');
    await writeFile(spec, JSON.stringify({ name: 'dropped', contents: [{ text: 'x\n', to: '/x' }] }));
    const { code, stdout, stderr } = await baler(proxy.url, ['build', spec, '--wait', '--no-cache']);
    expect(code, stderr).toBe(0);
    expect(stderr).toMatch(new RegExp(`^build ${stdout.trim()}: succeeded in`, 'm'));
    expect(proxy.eventRequests).toHaveLength(1);
  }, 120_000);
});
