/** Per-tenant queue quota and fairness between tenants, against the real service. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
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
