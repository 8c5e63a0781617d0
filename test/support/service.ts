/**
 * The real service for end-to-end tests: a private redis-server, and `src/main.ts` (the API)
 * as its own process, which runs the worker as a child process, exactly as `npm start` does.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { fileURLToPath } from 'node:url';
import { freePort, startPrivateRedis, type PrivateRedis } from '../../src/redis-server.ts';
import { parseLog, unfinishedBuilds } from './hang-report.ts';

const MAIN = fileURLToPath(new URL('../../src/main.ts', import.meta.url));

export interface Service {
  url: string;
  dataDir: string;
  /** The service's Redis (for a second API process, for more workers, or to look inside). */
  redisUrl: string;
  /** The store's directory (DATA_DIR). */
  storeDir: string;
  apiPid: number;
  workerPid(): Promise<number>;
  /** The service's output so far (JSON log lines). */
  output(): string;
  /** Stop Redis and start it again on the same port and data (its AOF); `whileDown` runs in between. */
  restartRedis(whileDown?: () => Promise<void>): Promise<void>;
  /** Kill the API process (SIGKILL; its worker goes with it) and start it again, same port and data. */
  restartApi(): Promise<void>;
  stop(): Promise<void>;
}

export async function startService(env: Record<string, string> = {}): Promise<Service> {
  const dataDir = await mkdtemp(join(tmpdir(), 'baler-test-'));
  let redis: PrivateRedis = await startPrivateRedis(join(dataDir, 'redis'));
  const redisPort = Number(new URL(redis.url).port);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let output = '';
  // BALER_TEST_LOG_DIR (CI): the service's output also goes, live, to a file there, and a
  // service stopped with a build unfinished writes Node reports there (see stop()).
  const logDir = process.env.BALER_TEST_LOG_DIR || undefined;
  const logFile = logDir ? createWriteStream(join(logDir, `service-${port}.log`)) : undefined;
  const reportOptions = logDir ? { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --report-on-signal --report-directory=${logDir}`.trim() } : {};
  let child: ChildProcess;
  let exited: Promise<void>;

  const launch = async () => {
    const started = output.length;
    child = spawn(process.execPath, ['--import', 'tsx', MAIN], {
      env: { ...process.env, ...reportOptions, PORT: String(port), HOST: '127.0.0.1', DATA_DIR: join(dataDir, 'store'), REDIS_URL: redis.url, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const keep = (d: Buffer) => {
      output += d.toString();
      logFile?.write(d);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    // Generous: on a loaded machine the worker process alone can take half a minute to start.
    const deadline = Date.now() + 120_000;
    for (;;) {
      const ready = await fetch(`${url}/readyz`).then(
        (r) => r.ok,
        () => false,
      );
      const fresh = output.slice(started);
      if (ready && (fresh.includes('worker started') || env.BALER_LOCAL_WORKERS === '0')) return;
      if (child.exitCode !== null || Date.now() > deadline) {
        child.kill('SIGKILL');
        await redis.stop();
        throw new Error(`service did not start:\n${output}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  await launch();

  return {
    url,
    dataDir,
    get redisUrl() {
      return redis.url;
    },
    storeDir: join(dataDir, 'store'),
    get apiPid() {
      return child.pid as number;
    },
    async workerPid() {
      const children = await readFile(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8');
      const pid = Number(children.trim().split(/\s+/)[0]);
      if (!pid) throw new Error('no worker process');
      return pid;
    },
    output: () => output,
    async restartRedis(whileDown) {
      await redis.stop();
      await whileDown?.();
      redis = await startPrivateRedis(join(dataDir, 'redis'), undefined, redisPort);
    },
    async restartApi() {
      child.kill('SIGKILL');
      await exited;
      await launch();
    },
    async stop() {
      if (logDir && child.exitCode === null && unfinishedBuilds(parseLog(output)).size > 0) await writeNodeReports(child.pid as number);
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
      await redis.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Asks the API process and its workers for a Node diagnostic report (SIGUSR2, see
 * NODE_OPTIONS above), written beside the logs: what each was doing when stopped with a build
 * unfinished. A process whose event loop is blocked writes none; that says it too.
 */
async function writeNodeReports(apiPid: number): Promise<void> {
  const children = await readFile(`/proc/${apiPid}/task/${apiPid}/children`, 'utf8').catch(() => '');
  const pids = [apiPid, ...children.trim().split(/\s+/).filter(Boolean).map(Number)];
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGUSR2');
    } catch {
      /* gone */
    }
  }
  await new Promise((r) => setTimeout(r, 2000));
}

/** Upload a file as a blob; returns its digest. */
export async function uploadFile(service: Service, path: string): Promise<string> {
  const res = await fetch(`${service.url}/v1/blobs`, {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream' },
    body: createReadStream(path) as unknown as BodyInit,
    duplex: 'half',
  } as RequestInit);
  if (res.status !== 201 && res.status !== 200) throw new Error(`upload failed: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { digest: string }).digest;
}

/**
 * Submit a build and return its id: 202 (queued) or 201 (taken from the build cache).
 * `noCache`: build it even if an identical spec was built before (tests of building itself).
 */
export async function submitBuild(service: Service, spec: unknown, opts: { noCache?: boolean } = {}): Promise<string> {
  const res = await fetch(`${service.url}/v1/builds${opts.noCache ? '?noCache=true' : ''}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(spec),
  });
  if (res.status !== 202 && res.status !== 201) throw new Error(`submit failed: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { id: string }).id;
}

export interface BuildView {
  id: string;
  status: string;
  cachedFrom?: string;
  error?: { detail: string; status: number };
  result?: { imageId: string; diffIds: string[]; archive: { digest: string; size: number; mediaType: string; parts?: string[] } };
}

export async function waitForBuild(service: Service, id: string, timeoutMs = 120_000): Promise<BuildView> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const build = (await (await fetch(`${service.url}/v1/builds/${id}`)).json()) as BuildView;
    if (['succeeded', 'failed', 'cancelled'].includes(build.status)) return build;
    if (Date.now() > deadline) throw new Error(`build ${id} still ${build.status} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Download a finished build's image to `path`. */
export async function downloadImage(service: Service, id: string, path: string): Promise<Response> {
  const res = await fetch(`${service.url}/v1/builds/${id}/image`);
  if (!res.ok || !res.body) throw new Error(`download failed: ${res.status} ${await res.text()}`);
  await pipeline(Readable.fromWeb(res.body as WebReadableStream), createWriteStream(path));
  return res;
}
