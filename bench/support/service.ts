/**
 * baler as a real service for `bench/build.ts`: `node --import tsx src/main.ts` with a fresh
 * DATA_DIR, a free PORT on 127.0.0.1, no REDIS_URL (so it runs its own private redis-server), its
 * own TMPDIR and BALER_VM_TMPDIR under the bench's temp dir (its VM temp dirs never mix with
 * anyone else's), in a process group of its own (a Ctrl-C at the terminal reaches only the bench,
 * which then stops the service in order). Its JSON log goes to a file.
 *
 * Also: a keep-alive HTTP client for the API, and where the service's processes are (the API =
 * the main process, the worker = its child running workers/build-worker.ts, redis-server).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readdirSync, readFileSync } from 'node:fs';
import { mkdir, open, readFile } from 'node:fs/promises';
import { Agent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../src/redis-server.ts';
import { pidAlive } from '../../test/support/run.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const MAIN = join(REPO, 'src/main.ts');

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** A small HTTP/1.1 client with keep-alive connections, as a CI script's client would have. */
export class Client {
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 64 });

  constructor(readonly base: string) {}

  private send(method: string, path: string, body: Buffer | string | Readable | undefined, headers: Record<string, string>, sink?: Writable): Promise<HttpResponse & { bytes: number }> {
    return new Promise((resolve, reject) => {
      const url = new URL(path, this.base);
      const req = httpRequest(url, { method, agent: this.agent, headers }, (res) => {
        const status = res.statusCode ?? 0;
        if (sink && status >= 200 && status < 300) {
          let bytes = 0;
          res.on('data', (c: Buffer) => (bytes += c.length));
          pipeline(res, sink).then(() => resolve({ status, headers: res.headers, body: Buffer.alloc(0), bytes }), reject);
          return;
        }
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const b = Buffer.concat(chunks);
          resolve({ status, headers: res.headers, body: b, bytes: b.length });
        });
        res.on('error', reject);
      });
      req.on('error', reject);
      if (body === undefined) req.end();
      else if (typeof body === 'string' || Buffer.isBuffer(body)) req.end(body);
      else pipeline(body, req).catch(reject);
    });
  }

  request(method: string, path: string, opts: { body?: Buffer | string | Readable; headers?: Record<string, string> } = {}): Promise<HttpResponse> {
    return this.send(method, path, opts.body, opts.headers ?? {});
  }

  async json<T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T; text: string }> {
    const res = await this.send(method, path, body === undefined ? undefined : JSON.stringify(body), body === undefined ? {} : { 'content-type': 'application/json' });
    const text = res.body.toString('utf8');
    let parsed: unknown = null;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      /* not JSON: the caller sees the text */
    }
    return { status: res.status, body: parsed as T, text };
  }

  /** GET `path` into `sink` (2xx only; otherwise the error body is returned and the sink left alone). */
  download(path: string, sink: Writable): Promise<HttpResponse & { bytes: number }> {
    return this.send('GET', path, undefined, {}, sink);
  }

  close(): void {
    this.agent.destroy();
  }
}

export interface BalerService {
  url: string;
  dataDir: string;
  logPath: string;
  /** The main process: API (and the parent of the worker and of redis-server). */
  apiPid: number;
  client: Client;
  /** The last `bytes` of the service log. */
  logTail(bytes?: number): Promise<string>;
  /** SIGTERM and wait (up to `graceMs`), then SIGKILL to its whole process group. Idempotent. */
  stop(graceMs?: number): Promise<void>;
  exited(): boolean;
}

/** The children of `pid` (from /proc/<pid>/task/<tid>/children over all its threads). */
export function childrenOf(pid: number): number[] {
  const out = new Set<number>();
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        for (const c of readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim().split(/\s+/)) if (c) out.add(Number(c));
      } catch {
        /* thread gone */
      }
    }
  } catch {
    /* process gone */
  }
  return [...out];
}

export function cmdlineOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return '';
  }
}

/** The worker process: the child of main that runs workers/build-worker.ts. */
export function workerPidOf(mainPid: number): number | undefined {
  return childrenOf(mainPid).find((c) => cmdlineOf(c).includes('build-worker.ts') && pidAlive(c));
}

export function redisPidOf(mainPid: number): number | undefined {
  return childrenOf(mainPid).find((c) => cmdlineOf(c).startsWith('redis-server') && pidAlive(c));
}

/** Live processes in process group `pgid`. */
export function processGroupMembers(pgid: number): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === pgid && fields[0] !== 'Z') pids.push(Number(entry));
    } catch {
      /* gone */
    }
  }
  return pids;
}

export async function startBalerService(workDir: string, extraEnv: Record<string, string> = {}): Promise<BalerService> {
  const dataDir = join(workDir, 'data');
  const tmp = join(workDir, 'service-tmp');
  const vmTmp = join(workDir, 'vm-tmp');
  for (const d of [dataDir, tmp, vmTmp]) await mkdir(d, { recursive: true });
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const logPath = join(workDir, 'service.log');
  const log = await open(logPath, 'a');
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(port), HOST: '127.0.0.1', DATA_DIR: dataDir, TMPDIR: tmp, BALER_VM_TMPDIR: vmTmp, ...extraEnv };
  delete env.REDIS_URL; // its own private redis-server
  delete env.BALER_TOKENS_FILE;
  delete env.BALER_LOCAL_WORKERS;
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', MAIN], {
    cwd: REPO,
    env,
    stdio: ['ignore', log.fd, log.fd],
    detached: true,
  });
  await log.close();
  const pid = child.pid;
  if (pid === undefined) throw new Error('could not spawn the service');
  let exitedFlag = false;
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      exitedFlag = true;
      resolve();
    }),
  );
  const client = new Client(url);

  const logTail = async (bytes = 4000): Promise<string> => {
    const text = await readFile(logPath, 'utf8').catch(() => '');
    return text.slice(-bytes);
  };

  let stopping: Promise<void> | undefined;
  const stop = (graceMs = 15_000): Promise<void> => {
    stopping ??= (async () => {
      client.close();
      if (!exitedFlag) {
        try {
          process.kill(pid, 'SIGTERM');
        } catch {
          /* gone */
        }
        await Promise.race([exited, new Promise((r) => setTimeout(r, graceMs))]);
      }
      // Whatever is left of its group (worker, redis-server, QEMU, helpers): SIGKILL.
      for (let attempt = 0; attempt < 20; attempt++) {
        const left = processGroupMembers(pid);
        if (left.length === 0) break;
        try {
          process.kill(-pid, 'SIGKILL');
        } catch {
          /* gone meanwhile */
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    return stopping;
  };

  const quietLog = ['warn', 'error', 'fatal', 'silent'].includes(env.LOG_LEVEL ?? '');
  const deadline = Date.now() + 180_000; // first start may build the VM assets
  for (;;) {
    if (exitedFlag) throw new Error(`the service exited during start:\n${await logTail()}`);
    const ready = await client.request('GET', '/readyz').then(
      (r) => r.status === 200,
      () => false,
    );
    // 'worker started' is logged at info; with a quieter LOG_LEVEL the caller's first build is the proof
    if (ready && workerPidOf(pid) !== undefined && (quietLog || (await logTail(1 << 20)).includes('worker started'))) break;
    if (Date.now() > deadline) {
      await stop(2000);
      throw new Error(`the service did not become ready in time:\n${await logTail()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  return { url, dataDir, logPath, apiPid: pid, client, logTail, stop, exited: () => exitedFlag };
}

/** Problems in the service log: counts of warn/error/fatal records and their distinct messages. */
export async function logProblems(logPath: string): Promise<{ warn: number; error: number; messages: Map<string, number> }> {
  const text = await readFile(logPath, 'utf8').catch(() => '');
  let warn = 0;
  let error = 0;
  const messages = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) {
      if (line.trim()) messages.set(`(not JSON) ${line.slice(0, 160)}`, (messages.get(`(not JSON) ${line.slice(0, 160)}`) ?? 0) + 1);
      continue;
    }
    let rec: { level?: number; msg?: string; err?: { message?: string } };
    try {
      rec = JSON.parse(line) as typeof rec;
    } catch {
      continue;
    }
    if ((rec.level ?? 0) < 40) continue;
    if ((rec.level ?? 0) >= 50) error++;
    else warn++;
    const key = `${(rec.level ?? 0) >= 50 ? 'error' : 'warn'}: ${rec.msg ?? ''}${rec.err?.message ? ` (${rec.err.message.slice(0, 160)})` : ''}`;
    messages.set(key, (messages.get(key) ?? 0) + 1);
  }
  return { warn, error, messages };
}

/** A file sink for downloads (1 MiB buffer: with the default 16 KiB, writing costs as much as the download). */
export function fileSink(path: string): Writable {
  return createWriteStream(path, { highWaterMark: 1 << 20 });
}

export interface StepSegment {
  /** `<event> → <next event>`, events being `started`, each `build step`'s step, and `succeeded`. */
  label: string;
  ms: number;
}

/**
 * The worker's own account of each build, from its log records (`build started`, `build step`
 * with `step`, `build succeeded`; info level): the time between consecutive events, by build id.
 */
export async function buildSteps(logPath: string): Promise<Map<string, StepSegment[]>> {
  const text = await readFile(logPath, 'utf8').catch(() => '');
  const events = new Map<string, { name: string; t: number }[]>();
  for (const line of text.split('\n')) {
    if (!line.startsWith('{') || !line.includes('"buildId"')) continue;
    let rec: { msg?: string; buildId?: string; step?: string; phase?: string; time?: number };
    try {
      rec = JSON.parse(line) as typeof rec;
    } catch {
      continue;
    }
    const name =
      rec.msg === 'build started' ? 'started' : rec.msg === 'build step' ? (rec.phase === 'started' ? rec.step : `${rec.step} ${rec.phase}`) : rec.msg === 'build succeeded' ? 'succeeded' : undefined;
    if (!name || !rec.buildId || rec.time === undefined) continue;
    const list = events.get(rec.buildId) ?? [];
    if (name === 'started') list.length = 0; // a retried attempt starts over
    list.push({ name, t: rec.time });
    events.set(rec.buildId, list);
  }
  const out = new Map<string, StepSegment[]>();
  for (const [id, list] of events) {
    const segs: StepSegment[] = [];
    for (let i = 1; i < list.length; i++) segs.push({ label: `${list[i - 1]?.name} → ${list[i]?.name}`, ms: (list[i]?.t ?? 0) - (list[i - 1]?.t ?? 0) });
    out.set(id, segs);
  }
  return out;
}
