/**
 * `GET /v1/signing-key` in a Fastify instance with the API's schemas, problem handlers and
 * token authentication (the route is public), answered through `inject`: no Redis, no worker.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadSigningKey, type SigningKey } from '../../src/attest/signing/signing-key.ts';
import { registerAuth } from '../../src/api/auth.ts';
import { loadSchemas } from '../../src/api/openapi.ts';
import { registerProblemHandlers } from '../../src/api/problems.ts';
import { signingKeyRoutes } from '../../src/api/signing-key.ts';
import { TokenFile } from '../../src/auth/token-file.ts';

let dir: string;
let key: SigningKey;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'baler-signing-key-route-'));
  execFileSync('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', join(dir, 'key.pem')]);
  key = await loadSigningKey(join(dir, 'key.pem'));
  await writeFile(join(dir, 'tokens'), 'tenant secret-token\n');
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function api(publicKeyPem: string | null): Promise<FastifyInstance> {
  const app = Fastify();
  for (const schema of loadSchemas()) app.addSchema(schema);
  registerProblemHandlers(app);
  registerAuth(app, await TokenFile.load(join(dir, 'tokens')));
  await app.register(signingKeyRoutes, { publicKeyPem });
  return app;
}

it('serves the public key as PEM, without a token', async () => {
  const app = await api(key.publicKeyPem);
  const res = await app.inject({ method: 'GET', url: '/v1/signing-key' });
  expect(res.statusCode).toBe(200);
  expect(res.headers['content-type']).toBe('application/x-pem-file');
  expect(res.body).toBe(key.publicKeyPem);
  // What openssl derives from the private key: the served key is its public half.
  expect(res.body).toBe(execFileSync('openssl', ['pkey', '-in', join(dir, 'key.pem'), '-pubout']).toString());
  expect(res.body).not.toContain('PRIVATE');
  await app.close();
});

it('answers 404 with a problem when the service has no key', async () => {
  const app = await api(null);
  const res = await app.inject({ method: 'GET', url: '/v1/signing-key' });
  expect(res.statusCode).toBe(404);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(res.json()).toMatchObject({ status: 404, title: 'Not Found', detail: expect.stringMatching(/BALER_SIGNING_KEY_FILE is unset/) });
  await app.close();
});
