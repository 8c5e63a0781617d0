/** Bearer tokens and tenants, against the real service with a tokens file. */
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startService, type BuildView, type Service } from '../support/service.ts';

let service: Service;
let dir: string;
let tokensFile: string;
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'baler-auth-'));
  tokensFile = join(dir, 'tokens');
  // Tenant b's token is given as its sha256, as an operator who keeps no plain tokens would.
  await writeFile(tokensFile, `# tenant token\nteam-a token-a\nteam-b sha256:${sha('token-b')}\n`);
  service = await startService({ BALER_TOKENS_FILE: tokensFile });
}, 60_000);

afterAll(async () => {
  await service?.stop();
  await rm(dir, { recursive: true, force: true });
});

const as = (token: string | undefined, path: string, init: RequestInit = {}) =>
  fetch(`${service.url}${path}`, { ...init, headers: { ...(init.headers ?? {}), ...(token ? { authorization: `Bearer ${token}` } : {}) } });

describe('with a tokens file', () => {
  it('needs a token on every route but the health checks', async () => {
    expect((await as(undefined, '/healthz')).status).toBe(200);
    expect((await as(undefined, '/readyz')).status).toBe(200);
    const res = await as(undefined, '/v1/builds/aaaaaaaaaaaaaaaaaaaaaaaaaa');
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(res.headers.get('content-type')).toMatch(/problem\+json/);
    expect((await as('wrong', '/v1/builds/aaaaaaaaaaaaaaaaaaaaaaaaaa')).status).toBe(401);
    expect((await as(undefined, '/v1/blobs', { method: 'POST', body: 'x' })).status).toBe(401);
  });

  it("shows a tenant only its own builds, blobs and logs: another tenant's are 404", async () => {
    const upload = await as('token-a', '/v1/blobs', { method: 'POST', body: 'a file of team a', headers: { 'content-type': 'application/octet-stream' } });
    expect(upload.status).toBe(201);
    const { digest } = (await upload.json()) as { digest: string };
    const submit = await as('token-a', '/v1/builds', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'team-a/app', contents: [{ file: digest, to: '/f' }] }),
    });
    expect(submit.status).toBe(202);
    const { id } = (await submit.json()) as { id: string };

    for (const path of [`/v1/builds/${id}`, `/v1/builds/${id}/logs`, `/v1/builds/${id}/image`, `/v1/builds/${id}/sbom`, `/v1/builds/${id}/provenance`, `/v1/blobs/${digest}`]) {
      expect((await as('token-b', path)).status, path).toBe(404);
    }
    expect((await as('token-b', `/v1/builds/${id}`, { method: 'DELETE' })).status).toBe(404);
    // Nor can b build from a's blob or a's build.
    const borrow = await as('token-b', '/v1/builds', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'team-b/app', contents: [{ file: digest, to: '/f' }] }),
    });
    expect(borrow.status).toBe(422);
    const fromA = await as('token-b', '/v1/builds', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'team-b/app', fromImage: { build: id } }),
    });
    expect(fromA.status).toBe(422);

    expect((await as('token-a', `/v1/blobs/${digest}`)).status).toBe(200);
    const mine = (await (await as('token-a', `/v1/builds/${id}`)).json()) as BuildView;
    expect(mine.id).toBe(id);
  });

  it('rotates tokens without a restart', async () => {
    await writeFile(tokensFile, `team-a token-a2\nteam-b sha256:${sha('token-b')}\n`);
    await new Promise((r) => setTimeout(r, 1500)); // the file is looked at once a second at most
    expect((await as('token-a', '/v1/builds/aaaaaaaaaaaaaaaaaaaaaaaaaa')).status).toBe(401);
    expect((await as('token-a2', '/v1/builds/aaaaaaaaaaaaaaaaaaaaaaaaaa')).status).toBe(404);
  });
});

it('refuses to listen beyond loopback without tokens unless BALER_AUTH=none', async () => {
  const main = fileURLToPath(new URL('../../src/main.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', main], {
    env: { ...process.env, HOST: '0.0.0.0', PORT: '0', REDIS_URL: 'redis://127.0.0.1:1', DATA_DIR: join(dir, 'data'), BALER_TOKENS_FILE: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  expect(code).toBe(2);
  expect(output).toMatch(/refusing to listen beyond loopback without authentication/);
}, 30_000);
