/** Per-tenant queue quota and fairness between tenants, against the real service. */
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startService, type Service } from '../support/service.ts';

const MANY = 500;
const LIMIT = 520;
let service: Service;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'baler-tenants-'));
  await writeFile(join(dir, 'tokens'), 'busy token-a\nother token-b\n');
  service = await startService({ BALER_TOKENS_FILE: join(dir, 'tokens'), BALER_TENANT_MAX_QUEUED: String(LIMIT) });
}, 60_000);

afterAll(async () => {
  await service?.stop();
  await rm(dir, { recursive: true, force: true });
});

const submit = (token: string, spec: unknown) =>
  fetch(`${service.url}/v1/builds`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(spec),
  });
const build = async (token: string, id: string) =>
  (await (await fetch(`${service.url}/v1/builds/${id}`, { headers: { authorization: `Bearer ${token}` } })).json()) as { status: string; startedAt?: string };

it(`one tenant's ${MANY} queued builds do not starve another's single build; over the quota is 429`, async () => {
  // Hold the only worker while the queue fills.
  const blocker = ((await (await submit('token-a', { name: 'busy/blocker', runAsRoot: 'sleep 10' })).json()) as { id: string }).id;
  for (let i = 0; i < 100 && (await build('token-a', blocker)).status !== 'running'; i++) await new Promise((r) => setTimeout(r, 100));

  const many: string[] = [];
  for (let i = 0; i < MANY; i++) {
    const res = await submit('token-a', { name: 'busy/many', tag: `t${i}`, contents: [{ text: String(i), to: '/n' }] });
    expect(res.status).toBe(202);
    many.push(((await res.json()) as { id: string }).id);
  }
  const single = ((await (await submit('token-b', { name: 'other/one', contents: [{ text: 'b', to: '/b' }] })).json()) as { id: string }).id;

  // The quota: the busy tenant can queue only so many.
  const over = await Promise.all(Array.from({ length: LIMIT - MANY + 5 }, (_, i) => submit('token-a', { name: 'busy/over', tag: `o${i}`, contents: [] })));
  const refused = over.filter((r) => r.status === 429);
  expect(refused.length).toBeGreaterThanOrEqual(5);
  expect(refused[0]?.headers.get('retry-after')).toBe('30');
  expect(refused[0]?.headers.get('content-type')).toMatch(/problem\+json/);
  // The other tenant is not affected by the busy one's quota.
  expect((await submit('token-b', { name: 'other/two', contents: [] })).status).toBe(202);

  // Once the worker is free, the other tenant's build goes before almost all of the 500.
  for (;;) {
    const status = (await build('token-b', single)).status;
    if (status === 'succeeded') break;
    expect(['queued', 'running']).toContain(status);
    await new Promise((r) => setTimeout(r, 200));
  }
  const singleStart = Date.parse((await build('token-b', single)).startedAt ?? '');
  let before = 0;
  for (const id of many) {
    const b = await build('token-a', id);
    if (b.startedAt && Date.parse(b.startedAt) < singleStart) before++;
  }
  expect(before).toBeLessThanOrEqual(2);
}, 300_000);

describe('per-tenant running and storage limits', () => {
  let limited: Service;
  let tokens: string;
  beforeAll(async () => {
    tokens = await mkdtemp(join(tmpdir(), 'baler-limits-'));
    await writeFile(join(tokens, 'tokens'), 'busy token-a\nother token-b\n');
    limited = await startService({
      BALER_TOKENS_FILE: join(tokens, 'tokens'),
      BALER_WORKER_CONCURRENCY: '2',
      BALER_TENANT_MAX_RUNNING: '1',
      BALER_TENANT_MAX_STORED_BYTES: String(1024 * 1024),
    });
  }, 60_000);
  afterAll(async () => {
    await limited?.stop();
    await rm(tokens, { recursive: true, force: true });
  });

  const post = (token: string, path: string, body: string, type = 'application/json') =>
    fetch(`${limited.url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': type }, body });
  const recordOf = async (token: string, id: string) =>
    (await (await fetch(`${limited.url}/v1/builds/${id}`, { headers: { authorization: `Bearer ${token}` } })).json()) as { status: string; error?: unknown };

  it('runs one build of a tenant at a time while another tenant uses the free worker slot', async () => {
    const submit = async (token: string, name: string) => ((await (await post(token, '/v1/builds', JSON.stringify({ name, runAsRoot: 'sleep 3' }))).json()) as { id: string }).id;
    const a1 = await submit('token-a', 'busy/one');
    const a2 = await submit('token-a', 'busy/two');
    const b1 = await submit('token-b', 'other/one');
    let bothOfA = false;
    let bWithA = false;
    for (;;) {
      const records = await Promise.all([recordOf('token-a', a1), recordOf('token-a', a2), recordOf('token-b', b1)]);
      const [s1, s2, s3] = records.map((r) => r.status);
      if (s1 === 'running' && s2 === 'running') bothOfA = true;
      if (s3 === 'running' && (s1 === 'running' || s2 === 'running')) bWithA = true;
      if ([s1, s2, s3].every((s) => s === 'succeeded' || s === 'failed')) {
        expect([s1, s2, s3], JSON.stringify(records.map((r) => r.error))).toEqual(['succeeded', 'succeeded', 'succeeded']);
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(bothOfA).toBe(false);
    expect(bWithA).toBe(true);
  }, 180_000);

  it("refuses uploads over a tenant's storage quota with 413, without touching other tenants", async () => {
    const chunk = (c: string) => c.repeat(600 * 1024);
    expect((await post('token-b', '/v1/blobs', chunk('a'), 'application/octet-stream')).status).toBe(201);
    const over = await post('token-b', '/v1/blobs', chunk('b'), 'application/octet-stream');
    expect(over.status).toBe(413);
    expect(((await over.json()) as { detail: string }).detail).toMatch(/quota/);
    // The same bytes again, named by their digest, are already counted: no new use.
    const digest = `sha256:${createHash('sha256').update(chunk('a')).digest('hex')}`;
    expect((await post('token-b', `/v1/blobs?digest=${digest}`, chunk('a'), 'application/octet-stream')).status).toBe(200);
    expect((await post('token-a', '/v1/blobs', chunk('b'), 'application/octet-stream')).status).toBe(201);
    // Bytes another tenant stored are new to this one: 201, as if nobody had them (a 200 would
    // tell tenant a that someone holds this file).
    const shared = 'bytes both tenants upload';
    expect((await post('token-b', '/v1/blobs', shared, 'application/octet-stream')).status).toBe(201);
    expect((await post('token-a', '/v1/blobs', shared, 'application/octet-stream')).status).toBe(201);
    expect((await post('token-a', '/v1/blobs', shared, 'application/octet-stream')).status).toBe(200);
  });
});
