/** `GET /v1/builds`: a tenant's newest builds, newest first, against the real service. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startService, type Service } from '../support/service.ts';

let service: Service;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'baler-build-list-'));
  await writeFile(join(dir, 'tokens'), 'alice token-a\nbob token-b\n');
  // No worker: the builds stay queued, which is all a list needs.
  service = await startService({ BALER_TOKENS_FILE: join(dir, 'tokens'), BALER_LOCAL_WORKERS: '0' });
}, 60_000);

afterAll(async () => {
  await service?.stop();
  await rm(dir, { recursive: true, force: true });
});

const get = (token: string, query = '') => fetch(`${service.url}/v1/builds${query}`, { headers: { authorization: `Bearer ${token}` } });

it("lists the tenant's own builds, newest first, as summaries, up to limit", async () => {
  const ids: string[] = [];
  for (const tag of ['one', 'two', 'three']) {
    const res = await fetch(`${service.url}/v1/builds`, {
      method: 'POST',
      headers: { authorization: 'Bearer token-a', 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'list/me', tag, contents: [{ text: tag, to: '/t' }] }),
    });
    expect(res.status).toBe(202);
    ids.push(((await res.json()) as { id: string }).id);
  }

  const all = await get('token-a');
  expect(all.status).toBe(200);
  const { builds } = (await all.json()) as { builds: Array<Record<string, unknown>> };
  expect(builds.map((b) => b.id)).toEqual([...ids].reverse());
  expect(builds[0]).toEqual({ id: ids[2], status: 'queued', name: 'list/me', tag: 'three', createdAt: expect.any(String) });

  const two = (await (await get('token-a', '?limit=2')).json()) as { builds: Array<{ id: string }> };
  expect(two.builds.map((b) => b.id)).toEqual([ids[2], ids[1]]);

  // Another tenant sees none of them; no token, no list.
  expect(await (await get('token-b')).json()).toEqual({ builds: [] });
  expect((await fetch(`${service.url}/v1/builds`)).status).toBe(401);
});

it('refuses a bad limit with a problem document', async () => {
  for (const query of ['?limit=0', '?limit=101', '?limit=abc', '?limit=-1', '?other=1']) {
    const res = await get('token-a', query);
    expect(res.status, query).toBe(400);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  }
});
