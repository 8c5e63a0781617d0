/** Idempotency-Key on POST /v1/builds and POST /v1/blobs, against the real service. */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startService, type Service } from '../support/service.ts';

let service: Service;
beforeAll(async () => {
  service = await startService();
}, 60_000);
afterAll(async () => service?.stop(), 60_000);

const postBuild = (body: unknown, key?: string) =>
  fetch(`${service.url}/v1/builds`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(key ? { 'idempotency-key': key } : {}) },
    body: JSON.stringify(body),
  });

it('a retried build request returns the first response and makes no second build', async () => {
  const spec = { name: 'idem/a', contents: [{ text: 'x', to: '/x' }] };
  const first = await postBuild(spec, 'key-1');
  expect(first.status).toBe(202);
  const { id } = (await first.json()) as { id: string };
  const again = await postBuild(spec, 'key-1');
  expect(again.status).toBe(202);
  expect(again.headers.get('idempotent-replayed')).toBe('true');
  expect(again.headers.get('location')).toBe(`/v1/builds/${id}`);
  expect(((await again.json()) as { id: string }).id).toBe(id);
  // Without a key, the same spec is a new build.
  expect(((await (await postBuild(spec)).json()) as { id: string }).id).not.toBe(id);
});

it('concurrent retries give one build', async () => {
  const spec = { name: 'idem/b', contents: [{ text: 'y', to: '/y' }] };
  const responses = await Promise.all(Array.from({ length: 5 }, () => postBuild(spec, 'key-2')));
  const ids = new Set<string>();
  for (const res of responses) {
    expect([202, 409]).toContain(res.status);
    if (res.status === 202) ids.add(((await res.json()) as { id: string }).id);
  }
  expect(ids.size).toBe(1);
});

it('the same key for a different request is refused', async () => {
  await postBuild({ name: 'idem/c' }, 'key-3');
  const res = await postBuild({ name: 'idem/d' }, 'key-3');
  expect(res.status).toBe(422);
  expect(res.headers.get('content-type')).toMatch(/problem\+json/);
});

it('a retried blob upload returns the first response', async () => {
  const upload = () => fetch(`${service.url}/v1/blobs`, { method: 'POST', headers: { 'content-type': 'application/octet-stream', 'idempotency-key': 'blob-1' }, body: 'hello' });
  const first = await upload();
  expect(first.status).toBe(201);
  const again = await upload();
  expect(again.status).toBe(201);
  expect(again.headers.get('idempotent-replayed')).toBe('true');
  expect(await again.json()).toEqual(await first.json());
});
