/**
 * A private Docker registry for tests: Debian's `docker-registry` (distribution 2.8) on
 * 127.0.0.1 with a free port, a temp storage root and a config written here; optionally
 * htpasswd basic auth. Killed by pid in `stop()`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../support/run.ts';

export const REGISTRY_BIN = '/usr/bin/docker-registry';

export interface TestRegistry {
  host: string;
  port: number;
  dir: string;
  auth?: { username: string; password: string };
  log: () => string;
  stop: () => Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export async function startRegistry(opts: { auth?: { username: string; password: string } } = {}): Promise<TestRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'baler-registry-'));
  const port = await freePort();
  let authBlock = '';
  if (opts.auth) {
    const hash = await run('htpasswd', ['-nbB', opts.auth.username, opts.auth.password]);
    if (hash.code !== 0) throw new Error(`htpasswd: ${hash.stderr} (Debian package apache2-utils)`);
    await writeFile(join(dir, 'htpasswd'), hash.stdout.trim() + '\n');
    authBlock = `auth:\n  htpasswd:\n    realm: baler-test\n    path: ${join(dir, 'htpasswd')}\n`;
  }
  const config = [
    'version: 0.1',
    'log:',
    '  level: info',
    '  accesslog:',
    '    disabled: false',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${join(dir, 'data')}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    authBlock,
  ].join('\n');
  await writeFile(join(dir, 'config.yml'), config);
  const child: ChildProcess = spawn(REGISTRY_BIN, ['serve', join(dir, 'config.yml')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const collect = (b: Buffer) => {
    if (log.length < 4_000_000) log += b.toString('utf8');
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const host = `127.0.0.1:${port}`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited: ${log}`);
    try {
      const res = await fetch(`http://${host}/v2/`);
      await res.body?.cancel();
      if (res.status === 200 || res.status === 401) break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`docker-registry did not start: ${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    host,
    port,
    dir,
    auth: opts.auth,
    log: () => log,
    stop: async () => {
      if (child.exitCode === null && child.pid) {
        process.kill(child.pid, 'SIGKILL');
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A fetch that records every request (method, path) it passes on. */
export function countingFetch(): { fetch: typeof fetch; requests: Array<{ method: string; path: string; status: number }> } {
  const requests: Array<{ method: string; path: string; status: number }> = [];
  const wrapped: typeof fetch = async (input, init) => {
    const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
    const res = await fetch(input, init);
    requests.push({ method: init?.method ?? 'GET', path: url.pathname + url.search, status: res.status });
    return res;
  };
  return { fetch: wrapped, requests };
}
