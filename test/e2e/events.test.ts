/**
 * Live build events end to end: the real service (API + worker + QEMU for the runAsRoot
 * build), real Redis, and a second API process without workers on the same Redis and store,
 * which can only know a build's events through Redis. The SSE client side is parsed by
 * eventsource-parser, as a browser's EventSource would.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/redis-server.ts';
import { startService, type Service } from '../support/service.ts';

const MAIN = fileURLToPath(new URL('../../src/main.ts', import.meta.url));
const TOKEN = 'token-a';
const OTHER_TOKEN = 'token-b';
const auth = (token = TOKEN) => ({ authorization: `Bearer ${token}` });

interface Event {
  id: string;
  event: string;
  data: Record<string, unknown>;
}

let service: Service;
let work: string;
/** The second API process: no workers, same Redis and store. */
let replica: { url: string; child: ChildProcess; output: () => string };

async function startReplica(): Promise<typeof replica> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN], {
    env: {
      ...process.env,
      PORT: String(port),
      HOST: '127.0.0.1',
      REDIS_URL: service.redisUrl,
      DATA_DIR: join(service.dataDir, 'store'),
      BALER_LOCAL_WORKERS: '0',
      BALER_TOKENS_FILE: join(work, 'tokens'),
      // Idle streams show they are alive this often (15 s by default).
      BALER_EVENTS_HEARTBEAT_MS: '500',
      BALER_TENANT_MAX_EVENT_STREAMS: '60',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  for (let i = 0; ; i++) {
    if (
      await fetch(`${url}/readyz`).then(
        (r) => r.ok,
        () => false,
      )
    )
      return { url, child, output: () => output };
    if (child.exitCode !== null || i > 300) throw new Error(`replica did not start:\n${output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function submit(spec: unknown): Promise<string> {
  const res = await fetch(`${service.url}/v1/builds`, { method: 'POST', headers: { ...auth(), 'content-type': 'application/json' }, body: JSON.stringify(spec) });
  expect(res.status, await res.clone().text()).toBe(202);
  return ((await res.json()) as { id: string }).id;
}

/** Open a build's events as SSE; `headers` may carry Last-Event-ID. */
async function openSse(base: string, id: string, headers: Record<string, string> = {}, signal?: AbortSignal): Promise<Response> {
  const res = await fetch(`${base}/v1/builds/${id}/events`, { headers: { ...auth(), accept: 'text/event-stream', ...headers }, signal });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
  return res;
}

/** The events of an SSE response as they arrive, until the server closes it. */
async function* sseEvents(res: Response): AsyncGenerator<Event> {
  const parsed: EventSourceMessage[] = [];
  const parser = createParser({ onEvent: (message) => parsed.push(message) });
  const decoder = new TextDecoder();
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    parser.feed(decoder.decode(chunk, { stream: true }));
    for (let message = parsed.shift(); message; message = parsed.shift()) {
      yield { id: message.id as string, event: message.event as string, data: JSON.parse(message.data) as Record<string, unknown> };
    }
  }
}

async function readAll(res: Response): Promise<Event[]> {
  const events: Event[] = [];
  for await (const event of sseEvents(res)) events.push(event);
  return events;
}

async function ndjson(base: string, id: string, query = ''): Promise<Event[]> {
  const res = await fetch(`${base}/v1/builds/${id}/events${query}`, { headers: { ...auth(), accept: 'application/x-ndjson' } });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^application\/x-ndjson/);
  const text = await res.text();
  expect(text.endsWith('\n')).toBe(true);
  return text
    .trimEnd()
    .split('\n')
    .map((line) => JSON.parse(line) as Event);
}

function compareIds(a: string, b: string): number {
  const [am, as] = a.split('-').map(BigInt) as [bigint, bigint];
  const [bm, bs] = b.split('-').map(BigInt) as [bigint, bigint];
  return am === bm ? Number(as - bs) : am < bm ? -1 : 1;
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'baler-events-'));
  await writeFile(join(work, 'tokens'), `tenant-a ${TOKEN}\ntenant-b ${OTHER_TOKEN}\n`);
  await mkdir(join(work, 'vm-tmp'));
  service = await startService({ BALER_TOKENS_FILE: join(work, 'tokens'), BALER_VM_TMPDIR: join(work, 'vm-tmp'), BALER_VM_POOL: '0' });
  replica = await startReplica();
}, 120_000);

afterAll(async () => {
  if (replica?.child.exitCode === null) {
    const exited = new Promise((resolve) => replica.child.once('exit', resolve));
    replica.child.kill('SIGTERM');
    await exited;
  }
  await service?.stop();
  await rm(work, { recursive: true, force: true });
});

describe('a runAsRoot build followed over SSE', () => {
  let id: string;
  let first: Event[];
  let resumed: Event[];

  beforeAll(async () => {
    id = await submit({
      name: 'events/vm',
      contents: [{ text: 'hi\n', to: '/etc/motd' }],
      runAsRoot: 'echo step-one\nsleep 3\necho step-two\n',
    });
    // Read through API process 1 until the VM step has started (the build cannot have
    // finished then: the step has yet to run), and hang up.
    const abort = new AbortController();
    first = [];
    for await (const event of sseEvents(await openSse(service.url, id, {}, abort.signal))) {
      first.push(event);
      if (event.event === 'step' && event.data.name === 'vm' && event.data.phase === 'started') break;
    }
    abort.abort();
    // Resume through API process 2, which has no worker and never saw this build.
    const lastId = first.at(-1)?.id as string;
    resumed = await readAll(await openSse(replica.url, id, { 'last-event-id': lastId }));
  }, 300_000);

  it('gets every event exactly once, in order, across the reconnection to another API process', async () => {
    expect(first.some((e) => e.event === 'state' && ['succeeded', 'failed', 'cancelled'].includes(e.data.status as string))).toBe(false);
    expect(resumed.at(-1)).toMatchObject({ event: 'state', data: { status: 'succeeded' } });
    // The whole history, read afterwards, is exactly the two parts joined.
    const whole = await readAll(await openSse(service.url, id));
    expect([...first, ...resumed]).toEqual(whole);
    const ids = whole.map((e) => e.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort(compareIds)).toEqual(ids);
    expect((await waitForBuildAs(id)).status).toBe('succeeded');
  });

  it('tells state changes, steps with durations, the log and progress', async () => {
    const whole = [...first, ...resumed];
    const states = whole.filter((e) => e.event === 'state').map((e) => e.data);
    expect(states.map((s) => s.status)).toEqual(['queued', 'running', 'succeeded']);
    expect(states[1]).toMatchObject({ attempt: 1 });
    expect(states[1]?.startedAt).toEqual(expect.any(String));
    expect(states[2]?.result).toMatchObject({ archive: { digest: expect.stringMatching(/^sha256:/) } });

    const steps = whole.filter((e) => e.event === 'step').map((e) => e.data);
    for (const name of ['vm', 'layer', 'archive']) {
      const started = steps.find((s) => s.name === name && s.phase === 'started');
      const finished = steps.find((s) => s.name === name && s.phase === 'finished' && s.index === started?.index);
      expect(started, name).toBeDefined();
      expect(finished?.durationMs, name).toEqual(expect.any(Number));
    }
    expect(steps.find((s) => s.name === 'archive' && s.phase === 'finished')?.detail).toMatchObject({ digest: expect.stringMatching(/^sha256:/) });
    // Every step names the platform it builds for (this single-platform build's).
    expect(new Set(steps.map((s) => s.platform))).toEqual(new Set(['linux/amd64']));

    // The log events are the build log.
    const logText = whole
      .filter((e) => e.event === 'log')
      .map((e) => e.data.text)
      .join('');
    expect(logText).toMatch(/step-one.*step-two/s);
    expect(logText).toBe(await (await fetch(`${service.url}/v1/builds/${id}/logs`, { headers: auth() })).text());

    const progress = whole.filter((e) => e.event === 'progress').map((e) => e.data);
    expect(progress.some((p) => p.what === 'archive' && p.bytesDone === p.bytesTotal)).toBe(true);
    for (const p of progress) expect(p.bytesDone).toEqual(expect.any(Number));
  });

  it('sends the same events as NDJSON, resumable with ?lastEventId=', async () => {
    const whole = await ndjson(replica.url, id);
    expect(whole).toEqual([...first, ...resumed]);
    const after = whole[1]?.id as string;
    expect(await ndjson(replica.url, id, `?lastEventId=${after}`)).toEqual(whole.slice(2));
  });
});

describe('a finished contents build', () => {
  let id: string;

  beforeAll(async () => {
    id = await submit({ name: 'events/contents', contents: [{ text: 'x\n', to: '/x' }] });
    expect((await waitForBuildAs(id)).status).toBe('succeeded');
  }, 120_000);

  it('gives its whole history, then closes', async () => {
    const events = await ndjson(service.url, id);
    expect(events.at(0)).toMatchObject({ event: 'state', data: { status: 'queued' } });
    expect(events.at(-1)).toMatchObject({ event: 'state', data: { status: 'succeeded' } });
    expect(events.filter((e) => e.event === 'step' && e.data.name === 'contents').map((e) => e.data.phase)).toEqual(['started', 'finished']);
  });

  it('resumed after its final state: nothing more, and the end at once', async () => {
    const last = (await ndjson(service.url, id)).at(-1)?.id as string;
    for (const base of [service.url, replica.url]) {
      const res = await fetch(`${base}/v1/builds/${id}/events?lastEventId=${last}`, { headers: { ...auth(), accept: 'application/x-ndjson' }, signal: AbortSignal.timeout(10_000) });
      expect(res.status).toBe(200);
      expect(await res.text()).toBe('');
    }
  });

  it('takes a cache hit: its log line, then its final state', async () => {
    const res = await fetch(`${service.url}/v1/builds`, {
      method: 'POST',
      headers: { ...auth(), 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'events/contents', contents: [{ text: 'x\n', to: '/x' }] }),
    });
    expect(res.status).toBe(201);
    const hit = ((await res.json()) as { id: string }).id;
    const events = await readAll(await openSse(replica.url, hit));
    expect(events.map((e) => e.event)).toEqual(['log', 'state']);
    expect(events[1]?.data).toMatchObject({ status: 'succeeded', cached: true, cachedFrom: id });
  });

  it('is 404 for another tenant, as the build itself is', async () => {
    for (const accept of ['text/event-stream', 'application/x-ndjson']) {
      const res = await fetch(`${replica.url}/v1/builds/${id}/events`, { headers: { ...auth(OTHER_TOKEN), accept } });
      expect(res.status).toBe(404);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(await res.json()).toEqual(
        await (await fetch(`${replica.url}/v1/builds/${id}`, { headers: auth(OTHER_TOKEN) })).json().then((p) => ({ ...(p as object), instance: `/v1/builds/${id}/events` })),
      );
    }
    expect((await fetch(`${replica.url}/v1/builds/aaaaaaaaaaaaaaaaaaaaaaaaaa/events`, { headers: auth() })).status).toBe(404);
  });

  it('is 406 for an Accept it cannot serve, 400 for a malformed event id', async () => {
    const res = await fetch(`${service.url}/v1/builds/${id}/events`, { headers: { ...auth(), accept: 'application/json' } });
    expect(res.status).toBe(406);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(await res.json()).toMatchObject({ status: 406, title: 'Not Acceptable' });
    const badHeader = await fetch(`${service.url}/v1/builds/${id}/events`, { headers: { ...auth(), 'last-event-id': 'yesterday' } });
    expect(badHeader.status).toBe(400);
    const badQuery = await fetch(`${service.url}/v1/builds/${id}/events?lastEventId=1-2-3`, { headers: auth() });
    expect(badQuery.status).toBe(400);
    expect(badQuery.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  });

  it('still ends when its events are gone (expired, or made before events were kept)', async () => {
    await withRedis((redis) => redis.del(`baler:events:${id}`));
    const events = await readAll(await openSse(replica.url, id));
    expect(events).toEqual([{ id: expect.any(String), event: 'state', data: expect.objectContaining({ status: 'succeeded' }) }]);
    // Appended once: the next reader gets the same single event.
    expect(await readAll(await openSse(service.url, id))).toEqual(events);
  });

  it('expires its stream with the build record retention', async () => {
    const ttl = await withRedis((redis) => redis.ttl(`baler:events:${id}`));
    expect(ttl).toBeGreaterThan(7 * 24 * 3600 - 600);
    expect(ttl).toBeLessThanOrEqual(7 * 24 * 3600);
  });
});

describe('watchers of a build that waits', () => {
  let id: string;

  beforeAll(async () => {
    id = await submit({ name: 'events/slow', runAsRoot: 'sleep 600' });
    // Redis connections are counted from once its VM step runs: by then its worker has opened
    // what it opens for the build (the build thread's own connection), however late it took it.
    const watching = new AbortController();
    for await (const event of sseEvents(await openSse(service.url, id, {}, watching.signal))) {
      if (event.event === 'step' && event.data.name === 'vm' && event.data.phase === 'started') break;
    }
    watching.abort();
  }, 120_000);

  it('share one blocked Redis connection per API process, released when they hang up', async () => {
    const blockedReads = async () => (await withRedis((redis) => redis.client('LIST') as Promise<string>)).split('\n').filter((c) => / flags=b.* cmd=xread/.test(c)).length;
    const clients = async () => (await withRedis((redis) => redis.client('LIST') as Promise<string>)).trim().split('\n').length;
    const before = await clients();
    const watchers = Array.from({ length: 50 }, () => new AbortController());
    const streams = await Promise.all(watchers.map((w) => openSse(replica.url, id, {}, w.signal).then((res) => sseEvents(res))));
    // Each has its history (at least the queued state) and now waits for more.
    for (const stream of streams) expect((await stream.next()).value).toMatchObject({ event: 'state', data: { status: 'queued' } });
    while ((await blockedReads()) !== 1) await new Promise((r) => setTimeout(r, 100));
    // No connection more than before (each count sees its own one).
    expect(await clients()).toBe(before);

    for (const watcher of watchers) watcher.abort();
    // The shared read lapses (BLOCK ends) and is not issued again: nobody is watching.
    while ((await blockedReads()) !== 0) await new Promise((r) => setTimeout(r, 100));
  }, 60_000);

  it('are limited per tenant and API process: over the limit 429, until one of them closes', async () => {
    const watchers = Array.from({ length: 60 }, () => new AbortController());
    await Promise.all(watchers.map((w) => openSse(replica.url, id, {}, w.signal)));
    const over = await fetch(`${replica.url}/v1/builds/${id}/events`, { headers: { ...auth(), accept: 'text/event-stream' } });
    expect(over.status).toBe(429);
    expect(over.headers.get('retry-after')).toBe('5');
    expect(over.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(((await over.json()) as { detail: string }).detail).toContain('60 event streams');
    // Each API process counts its own streams.
    const elsewhere = new AbortController();
    await openSse(service.url, id, {}, elsewhere.signal);
    elsewhere.abort();

    watchers[0]?.abort();
    for (let i = 0; ; i++) {
      const attempt = new AbortController();
      const res = await fetch(`${replica.url}/v1/builds/${id}/events`, { headers: { ...auth(), accept: 'text/event-stream' }, signal: attempt.signal });
      attempt.abort();
      if (res.status === 200) break;
      expect(res.status).toBe(429);
      expect(i, 'the closed stream was not counted off').toBeLessThan(50);
      await new Promise((r) => setTimeout(r, 100));
    }
    for (const watcher of watchers) watcher.abort();
  }, 60_000);

  it('get heartbeats while nothing happens (SSE comments, empty NDJSON lines), and the cancelled state at the end', async () => {
    const abort = new AbortController();
    const decoder = new TextDecoder();
    const res = await openSse(replica.url, id, {}, abort.signal);
    const lines = await fetch(`${replica.url}/v1/builds/${id}/events`, { headers: { ...auth(), accept: 'application/x-ndjson' } });
    const lineBody = (lines.body as unknown as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
    let text = '';
    const lineDecoder = new TextDecoder();
    // The history ends with a line, and then empty lines come while the build waits.
    while (!text.includes('}\n\n\n')) text += lineDecoder.decode((await lineBody.next()).value, { stream: true });
    const parsed: Array<{ comment: string } | EventSourceMessage> = [];
    const parser = createParser({ onEvent: (m) => parsed.push(m), onComment: (comment) => parsed.push({ comment }) });
    const body = (res.body as unknown as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
    while (!parsed.some((p) => 'comment' in p)) parser.feed(decoder.decode((await body.next()).value, { stream: true }));

    const cancelled = await fetch(`${service.url}/v1/builds/${id}/cancel`, { method: 'POST', headers: auth() });
    expect(cancelled.status).toBe(200);
    for (let chunk = await body.next(); !chunk.done; chunk = await body.next()) parser.feed(decoder.decode(chunk.value, { stream: true }));
    const events = parsed.filter((p): p is EventSourceMessage => !('comment' in p));
    expect(events.at(-1)).toMatchObject({ event: 'state' });
    expect(JSON.parse(events.at(-1)?.data ?? '{}')).toMatchObject({ status: 'cancelled' });

    for (let chunk = await lineBody.next(); !chunk.done; chunk = await lineBody.next()) text += lineDecoder.decode(chunk.value, { stream: true });
    const lineEvents = text
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as Event);
    expect(lineEvents.map((e) => e.id)).toEqual(events.map((e) => e.id));
    expect(lineEvents.at(-1)).toMatchObject({ event: 'state', data: { status: 'cancelled' } });
  }, 60_000);
});

async function withRedis<T>(use: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = new Redis(service.redisUrl);
  try {
    return await use(redis);
  } finally {
    redis.disconnect();
  }
}

async function waitForBuildAs(id: string): Promise<{ status: string }> {
  for (;;) {
    const build = (await (await fetch(`${service.url}/v1/builds/${id}`, { headers: auth() })).json()) as { status: string };
    if (['succeeded', 'failed', 'cancelled'].includes(build.status)) return build;
    await new Promise((r) => setTimeout(r, 100));
  }
}
