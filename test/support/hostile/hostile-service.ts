/**
 * The real service as hostile tests run it: tokens for the attacking tenants and for a
 * bystander (whose normal build after each attack shows that others are unharmed), the
 * worker's own `/metrics` on a port of its own (event-loop delay), and what each file asks
 * for (small quotas, budgets). Clients act as one tenant each.
 */
import { createReadStream } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../../src/redis-server.ts';
import { pidAlive } from '../run.ts';
import { startService, type BuildView, type Service } from '../service.ts';

/** The tenant whose normal build follows every attack. */
export const BYSTANDER = 'bystander';

export interface Problem {
  status: number;
  detail?: string;
  title?: string;
}

export class TenantClient {
  constructor(
    private readonly service: Service,
    readonly tenant: string,
    readonly token: string,
  ) {}

  request(path: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    headers.set('authorization', `Bearer ${this.token}`);
    return fetch(`${this.service.url}${path}`, { ...init, headers });
  }

  /** Upload a file (by path), bytes or a stream; the response as it came (201/200, or a problem). */
  upload(body: string | Buffer | ReadableStream<Uint8Array>): Promise<Response> {
    const sent = typeof body === 'string' ? (createReadStream(body) as unknown as BodyInit) : Buffer.isBuffer(body) ? new Uint8Array(body.buffer, body.byteOffset, body.byteLength) : body;
    return this.request('/v1/blobs', { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: sent, duplex: 'half' } as RequestInit);
  }

  async uploadOk(body: string | Buffer): Promise<string> {
    const res = await this.upload(body);
    if (res.status !== 201 && res.status !== 200) throw new Error(`upload failed: ${res.status} ${await res.text()}`);
    return ((await res.json()) as { digest: string }).digest;
  }

  submit(spec: unknown, query = ''): Promise<Response> {
    return this.request(`/v1/builds${query}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(spec) });
  }

  async submitOk(spec: unknown, query = ''): Promise<string> {
    const res = await this.submit(spec, query);
    if (res.status !== 202 && res.status !== 201) throw new Error(`submit failed: ${res.status} ${await res.text()}`);
    return ((await res.json()) as { id: string }).id;
  }

  async build(id: string): Promise<BuildView & { startedAt?: string; finishedAt?: string; attempt?: number }> {
    return (await (await this.request(`/v1/builds/${id}`)).json()) as BuildView;
  }

  cancel(id: string): Promise<Response> {
    return this.request(`/v1/builds/${id}/cancel`, { method: 'POST' });
  }

  /** The build once finished; undefined if it is not by `timeoutMs`. */
  async finished(id: string, timeoutMs: number): Promise<BuildView | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const build = await this.build(id);
      if (['succeeded', 'failed', 'cancelled'].includes(build.status)) return build;
      if (Date.now() > deadline) return undefined;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

export interface HostileService {
  service: Service;
  metricsPort: number;
  /** What BALER_TENANT_MAX_STORED_BYTES is for every tenant. */
  quota: number;
  as(tenant: string): TenantClient;
  /** A fresh service (new data, same settings): after an attack the old one could not survive. */
  replace(): Promise<void>;
  stop(): Promise<void>;
}

export interface HostileOptions {
  /** Tenants besides the bystander. */
  tenants: string[];
  /** Bytes each tenant may store. */
  quota: number;
  env?: Record<string, string>;
}

export async function startHostileService(opts: HostileOptions): Promise<HostileService> {
  const dir = await mkdtemp(join(tmpdir(), 'baler-hostile-'));
  const tenants = [...new Set([...opts.tenants, BYSTANDER])];
  const tokens = join(dir, 'tokens');
  await writeFile(tokens, tenants.map((t) => `${t} token-${t}\n`).join(''));
  const metricsPort = await freePort();
  const env = {
    BALER_TOKENS_FILE: tokens,
    BALER_TENANT_MAX_STORED_BYTES: String(opts.quota),
    BALER_WORKER_METRICS_PORT: String(metricsPort),
    // Warm VMs boot in the background and take a core of a 2-core TCG machine, for the few
    // steps here: each step boots its own.
    BALER_VM_POOL: '0',
    ...opts.env,
  };
  let service = await startWarmService(env);
  const hostile: HostileService = {
    get service() {
      return service;
    },
    metricsPort,
    quota: opts.quota,
    as(tenant) {
      if (!tenants.includes(tenant)) throw new Error(`no token for tenant '${tenant}'`);
      return new TenantClient(service, tenant, `token-${tenant}`);
    },
    async replace() {
      await stopWithWorker(service);
      service = await startWarmService(env);
    },
    async stop() {
      if (service) await stopWithWorker(service);
      await rm(dir, { recursive: true, force: true });
    },
  };
  return hostile;
}

/**
 * The service after one small build of the bystander's: what a worker does once, on its first
 * build (loading modules, compiling), is not charged to the first attack.
 */
async function startWarmService(env: Record<string, string>): Promise<Service> {
  const service = await startService(env);
  const bystander = new TenantClient(service, BYSTANDER, `token-${BYSTANDER}`);
  const id = await bystander.submitOk({ name: 'bystander/warm-up', contents: [{ text: 'warm\n', to: '/warm' }] });
  const build = await bystander.finished(id, 60_000);
  if (build?.status !== 'succeeded') throw new Error(`the warm-up build did not succeed: ${JSON.stringify(build)}`);
  return service;
}

/**
 * Stops the service, and its worker too when that is too busy (a blocked event loop) to hear
 * that its parent went: it would live on as an orphan, still attacked.
 */
async function stopWithWorker(service: Service): Promise<void> {
  const worker = await service.workerPid().catch(() => undefined);
  await service.stop();
  if (worker !== undefined && pidAlive(worker)) process.kill(worker, 'SIGKILL');
}

/** A problem document's status and detail (or the body's start when it is none). */
export async function problemOf(res: Response): Promise<Problem> {
  const text = await res.text();
  try {
    const body = JSON.parse(text) as { detail?: string; title?: string };
    return { status: res.status, detail: body.detail, title: body.title };
  } catch {
    return { status: res.status, detail: text.slice(0, 300) };
  }
}
