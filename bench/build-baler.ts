import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Writable } from 'node:stream';
import { checkInterrupted, sleep } from './build-context.ts';
import type { BalerService } from './support/service.ts';

// Talking to baler over HTTP, as the bench measures it.

export interface BuildView {
  id: string;
  status: string;
  /** Set on a build-cache hit: the build whose result was reused (`cached` in the words). */
  cachedFrom?: string;
  cached?: boolean;
  createdAt?: string;
  startedAt?: string;
  finishedAt?: string;
  error?: { detail?: string; title?: string };
  result?: { imageId: string; archive: { digest: string; size: number; mediaType: string } };
}

export const FINAL = new Set(['succeeded', 'failed', 'cancelled']);

export function isCached(b: BuildView): boolean {
  return Boolean(b.cachedFrom || b.cached);
}

export class Baler {
  succeeded = 0;

  constructor(readonly svc: BalerService) {}

  get client() {
    return this.svc.client;
  }

  async upload(path: string, expectDigest?: string): Promise<{ digest: string; size: number; status: number }> {
    const res = await this.client.request('POST', '/v1/blobs', { body: createReadStream(path), headers: { 'content-type': 'application/octet-stream' } });
    if (res.status !== 201 && res.status !== 200) throw new Error(`upload of ${path}: ${res.status} ${res.body.toString('utf8').slice(0, 500)}`);
    const body = JSON.parse(res.body.toString('utf8')) as { digest: string; size: number };
    if (expectDigest && body.digest !== expectDigest) throw new Error(`upload of ${path}: server says ${body.digest}, expected ${expectDigest}`);
    return { ...body, status: res.status };
  }

  async submit(spec: unknown, noCache: boolean): Promise<BuildView> {
    const query = noCache ? '?noCache=true' : '';
    const r = await this.client.json<BuildView>('POST', `/v1/builds${query}`, spec);
    if (r.status < 200 || r.status >= 300) throw new Error(`POST /v1/builds${query}: ${r.status} ${r.text.slice(0, 1000)}`);
    return r.body;
  }

  async get(id: string): Promise<BuildView> {
    const r = await this.client.json<BuildView>('GET', `/v1/builds/${id}`);
    if (r.status !== 200) throw new Error(`GET /v1/builds/${id}: ${r.status} ${r.text.slice(0, 500)}`);
    return r.body;
  }

  /** Polls every `intervalMs` (the first poll at once) until the build is final; throws unless it succeeded. */
  async waitSucceeded(id: string, intervalMs: number, timeoutMs: number): Promise<BuildView> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const b = await this.get(id);
      if (FINAL.has(b.status)) {
        if (b.status !== 'succeeded') throw new Error(`build ${id} ${b.status}: ${b.error?.detail ?? JSON.stringify(b.error)}\n--- service log (tail)\n${await this.svc.logTail()}`);
        this.succeeded++;
        return b;
      }
      if (Date.now() > deadline) throw new Error(`build ${id} still ${b.status} after ${timeoutMs} ms`);
      checkInterrupted();
      await sleep(intervalMs);
    }
  }

  async download(id: string, sink: Writable): Promise<{ bytes: number; contentLength: number }> {
    const res = await this.client.download(`/v1/builds/${id}/image`, sink);
    if (res.status !== 200) throw new Error(`GET /v1/builds/${id}/image: ${res.status} ${res.body.toString('utf8').slice(0, 500)}`);
    return { bytes: res.bytes, contentLength: Number(res.headers['content-length'] ?? -1) };
  }
}

/** A Writable that only hashes and counts (for the large download). */
export function hashingSink(): { sink: Writable; digest: () => string } {
  const hash = createHash('sha256');
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      done();
    },
  });
  return { sink, digest: () => `sha256:${hash.digest('hex')}` };
}

export async function sha256Of(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}

/** How long the server says the build was queued and running. */
export function serverMs(b: BuildView): { queued: number; running: number } {
  const t = (s: string | undefined): number => (s ? Date.parse(s) : NaN);
  return { queued: t(b.startedAt) - t(b.createdAt), running: t(b.finishedAt) - t(b.startedAt) };
}
