/**
 * Follow a build to its end: the live events stream (`GET /v1/builds/{id}/events` as NDJSON,
 * resumed with `Last-Event-ID` when the connection drops), or, on a server without it (404/406),
 * polling the build and its log.
 */
import type { ProblemBody } from '../problem.ts';
import { ApiProblem, type BalerClient } from './client.ts';

export const FINAL_STATUSES = new Set(['succeeded', 'failed', 'cancelled']);

/** A build as `GET /v1/builds/{id}` shows it (the fields the CLI reads). */
export interface BuildView {
  id: string;
  status: string;
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  cached?: boolean;
  cachedFrom?: string;
  error?: ProblemBody;
  spec: { name: string; tag: string; format: string; compression: string };
  result?: { imageId: string; diffIds: string[]; archive: { digest: string; size: number; mediaType: string; filename?: string } };
  pushes?: Record<string, { status: string; requestedAt: string; finishedAt?: string; manifestDigest?: string; error?: string }>;
}

export interface StepEvent {
  phase: 'cached' | 'started' | 'finished' | string;
  /** base, contents, vm, layer, archive */
  name: string;
  /** 0-based, in the order steps began. */
  index?: number;
  durationMs?: number;
  /** The platform the step builds for (`linux/arm64`); none on a multi-platform build's index step. */
  platform?: string;
}

export interface ProgressEvent {
  bytesDone: number;
  bytesTotal?: number;
  what: string;
}

export interface BuildListener {
  state?(status: string): void;
  step?(event: StepEvent): void;
  log?(text: string): void;
  progress?(event: ProgressEvent): void;
}

export interface FollowOptions {
  /** Poll interval of the fallback (ms). */
  pollMs?: number;
  /** Never use the events stream (tests of the fallback; servers behind proxies that buffer). */
  poll?: boolean;
  /** How many times a dropped stream is resumed before giving up. */
  reconnects?: number;
}

/** Follow build `id` until it is final; returns its record then. */
export async function followBuild(client: BalerClient, id: string, listener: BuildListener, opts: FollowOptions = {}): Promise<BuildView> {
  // Log text already shown, so that polling after a stream (a replica without the route) does not repeat it.
  let logShown = 0;
  const counted: BuildListener = { ...listener, log: (text) => ((logShown += text.length), listener.log?.(text)) };
  if (!opts.poll) {
    const streamed = await followEvents(client, id, counted, opts.reconnects ?? 5);
    if (streamed) return streamed;
  }
  return pollBuild(client, id, listener, opts.pollMs ?? 500, logShown);
}

const path = (id: string) => `/v1/builds/${encodeURIComponent(id)}`;

/** The events stream; null when the server has none (then the caller polls). */
async function followEvents(client: BalerClient, id: string, listener: BuildListener, reconnects: number): Promise<BuildView | null> {
  let lastEventId: string | undefined;
  let failures = 0;
  for (;;) {
    let res: Response;
    // A connection that goes silent (a proxy or network that dropped it without telling) is
    // given up after STREAM_IDLE_MS and resumed. The server sends an empty line every 15 s
    // while a build is quiet, so only a dead connection stays silent that long.
    const idle = new IdleWatchdog(STREAM_IDLE_MS);
    try {
      res = await client.request(`${path(id)}/events`, { headers: { accept: 'application/x-ndjson', ...(lastEventId ? { 'last-event-id': lastEventId } : {}) }, signal: idle.signal }, [404, 406]);
    } catch (err) {
      idle.stop();
      if (idle.expired) continue;
      if (err instanceof ApiProblem || ++failures > reconnects) throw err;
      await sleep(500 * failures);
      continue;
    }
    if (res.status === 404 || res.status === 406) {
      idle.stop();
      await res.body?.cancel();
      // 404 from a server with the route means the build is not there: say so, as a problem.
      if (lastEventId === undefined) await client.json<BuildView>(path(id));
      return null;
    }
    let final = false;
    try {
      for await (const line of ndjsonLines(res.body as ReadableStream<Uint8Array>, () => idle.reset())) {
        // Anything that arrives, an event or a heartbeat, shows the connection worked.
        failures = 0;
        if (!line.trim()) continue;
        const message = JSON.parse(line) as { id?: string | number; event: string; data: unknown };
        if (message.id !== undefined) lastEventId = String(message.id);
        if (dispatch(message.event, message.data, listener)) final = true;
      }
    } catch (err) {
      idle.stop();
      // The final state came, then the connection broke: nothing is left to read.
      if (final) return client.json<BuildView>(path(id));
      // Silent for too long: resume at once (not a failure: the build may just be quiet).
      if (idle.expired) continue;
      if (err instanceof SyntaxError) throw new Error(`the events stream sent something that is not JSON: ${err.message}`, { cause: err });
      if (++failures > reconnects) throw new Error(`the events stream broke off: ${(err as Error).message}`, { cause: err });
      await sleep(500 * failures);
      continue;
    }
    idle.stop();
    if (final) return client.json<BuildView>(path(id));
    // The stream ended before its final state (a proxy, a restart): resume where it stopped,
    // even when the build has ended meanwhile (its last events are still to be read).
    if (++failures > reconnects) {
      const build = await client.json<BuildView>(path(id));
      if (FINAL_STATUSES.has(build.status)) return build;
      throw new Error(`the events stream of build ${id} keeps ending before the build does`);
    }
    await sleep(500 * failures);
  }
}

/** How long an events connection may stay silent before it is resumed on a new one. */
const STREAM_IDLE_MS = 30_000;

/** Aborts its signal once `ms` pass without a reset(). */
class IdleWatchdog {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout;
  expired = false;

  constructor(private readonly ms: number) {
    this.timer = this.arm();
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  reset(): void {
    clearTimeout(this.timer);
    this.timer = this.arm();
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  private arm(): NodeJS.Timeout {
    return setTimeout(() => {
      this.expired = true;
      this.controller.abort(new Error(`no data for ${this.ms} ms`));
    }, this.ms);
  }
}

/** The lines of a response body; a connection that breaks off rejects (readline might not say so). */
async function* ndjsonLines(body: ReadableStream<Uint8Array>, onData: () => void): AsyncGenerator<string> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffered = '';
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      onData();
      buffered += decoder.decode(value, { stream: true });
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        yield buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
      }
    }
  } finally {
    reader.releaseLock();
  }
  if (buffered.trim()) yield buffered;
}

/** Hand one event (BuildEvent in openapi.yaml) to the listener; true when it is a final state. */
function dispatch(event: string, data: unknown, listener: BuildListener): boolean {
  const d = (typeof data === 'object' && data !== null ? data : {}) as Record<string, unknown>;
  switch (event) {
    case 'state': {
      const status = String(d.status);
      listener.state?.(status);
      return FINAL_STATUSES.has(status);
    }
    case 'log':
      listener.log?.(String(d.text ?? ''));
      return false;
    case 'step': {
      const step: StepEvent = { phase: String(d.phase), name: String(d.name) };
      if (typeof d.index === 'number') step.index = d.index;
      if (typeof d.durationMs === 'number') step.durationMs = d.durationMs;
      if (typeof d.platform === 'string') step.platform = d.platform;
      listener.step?.(step);
      return false;
    }
    case 'progress': {
      const progress: ProgressEvent = { bytesDone: Number(d.bytesDone ?? 0), what: String(d.what) };
      if (typeof d.bytesTotal === 'number') progress.bytesTotal = d.bytesTotal;
      listener.progress?.(progress);
      return false;
    }
    default:
      return false; // kinds this CLI does not know yet
  }
}

/** The fallback: the build's record for its state, its log for new text. */
async function pollBuild(client: BalerClient, id: string, listener: BuildListener, pollMs: number, logShown: number): Promise<BuildView> {
  let status: string | undefined;
  let shown = logShown;
  const showLog = async () => {
    const text = await (await client.request(`${path(id)}/logs`)).text();
    if (text.length > shown) listener.log?.(text.slice(shown));
    shown = Math.max(shown, text.length);
  };
  for (;;) {
    const build = await client.json<BuildView>(path(id));
    if (build.status !== status) {
      status = build.status;
      listener.state?.(status);
    }
    await showLog();
    if (FINAL_STATUSES.has(build.status)) return build;
    await sleep(pollMs);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
