/**
 * The service against its contract, openapi.yaml: every route it registers is documented and
 * every documented operation is served; and every status, media type and JSON body it sends
 * in a representative run (successes and client mistakes, with tokens and without, a worker
 * and a queue that never drains) is documented, bodies checked with Ajv. Real services, real
 * Redis, real worker; the responses are recorded by the service itself (BALER_CONTRACT_LOG).
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HTTP_METHODS, openApiDocument } from '../../src/api/openapi.ts';
import { startService, type Service } from '../support/service.ts';
import { readContractLog, responseViolation, undocumentedRoutes, unservedOperations, type ResponseLine } from './contract.ts';

const TOKEN = 'contract-token';
const UPLOAD_LIMIT = 64 * 1024;
const JSON_LIMIT = 16 * 1024;
const NOT_STORED = `sha256:${'0'.repeat(64)}`;

let dir: string;
/** With a worker and tokens: the whole flow. */
let service: Service;
/** Without a worker, one queued build per tenant: what a full queue and unfinished builds give. */
let queueOnly: Service;
let logs: string[];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'baler-contract-'));
  await writeFile(join(dir, 'tokens'), `contract ${TOKEN}\n`);
  // `service` signs (its /v1/signing-key answers 200), `queueOnly` does not (404).
  execFileSync('openssl', ['genpkey', '-algorithm', 'ed25519', '-out', join(dir, 'signing.pem')]);
  logs = [join(dir, 'service.jsonl'), join(dir, 'queue-only.jsonl')];
  // One after the other: two services starting at once on a busy 2-core machine can miss
  // the start deadline.
  service = await startService({
    BALER_CONTRACT_LOG: logs[0] as string,
    BALER_TOKENS_FILE: join(dir, 'tokens'),
    BALER_SIGNING_KEY_FILE: join(dir, 'signing.pem'),
    BALER_MAX_UPLOAD_BYTES: String(UPLOAD_LIMIT),
    BALER_MAX_JSON_BYTES: String(JSON_LIMIT),
    // No step here runs a script: no VM waits warm.
    BALER_VM_POOL: '0',
  });
  queueOnly = await startService({ BALER_CONTRACT_LOG: logs[1] as string, BALER_LOCAL_WORKERS: '0', BALER_TENANT_MAX_QUEUED: '1' });
}, 180_000);

afterAll(async () => {
  await Promise.all([service?.stop(), queueOnly?.stop()]);
  await rm(dir, { recursive: true, force: true });
});

const auth = { authorization: `Bearer ${TOKEN}` };
const call = (path: string, init: RequestInit = {}, to: Service = service) =>
  fetch(`${to.url}${path}`, { ...init, headers: { ...(to === service ? auth : {}), ...(init.headers as Record<string, string> | undefined) } });
const json = (body: unknown) => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
const upload = (bytes: string, query = '') => call(`/v1/blobs${query}`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: bytes });
/** Send and read the whole answer (the record is complete once the body is). */
const done = async (res: Response | Promise<Response>) => {
  const r = await res;
  await r.arrayBuffer();
  return r.status;
};

async function waitFinished(id: string): Promise<string> {
  for (const deadline = Date.now() + 120_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 100))) {
    const build = (await (await call(`/v1/builds/${id}`)).json()) as { status: string };
    if (['succeeded', 'failed', 'cancelled'].includes(build.status)) return build.status;
  }
  throw new Error(`build ${id} did not finish`);
}

/** A representative run; returns ids and digests for the generic probe. */
async function exercise(): Promise<{ buildId: string; digest: string }> {
  // Public routes, with and without a token; 401 without one elsewhere.
  for (const path of ['/healthz', '/readyz', '/openapi.yaml', '/docs', '/docs/init.js', '/docs/swagger-ui.css', '/docs/swagger-ui-bundle.js', '/docs/favicon-32x32.png']) {
    expect(await done(fetch(`${service.url}${path}`)), path).toBe(200);
  }
  expect(await done(fetch(`${service.url}/docs/nothing.js`))).toBe(404);
  expect(await done(fetch(`${service.url}/healthz`, { method: 'HEAD' }))).toBe(200);
  expect(await done(fetch(`${service.url}/v1/signing-key`))).toBe(200);
  expect(await done(fetch(`${queueOnly.url}/v1/signing-key`))).toBe(404);
  expect(await done(fetch(`${service.url}/v1/builds/aaaaaaaaaaaaaaaaaaaaaaaaaa`))).toBe(401);
  expect(await done(fetch(`${service.url}/v1/builds`, { ...json({ name: 'x' }), headers: { authorization: 'Bearer wrong', 'content-type': 'application/json' } }))).toBe(401);

  // Blobs.
  const uploaded = await upload('hello contract\n');
  expect(uploaded.status).toBe(201);
  const { digest } = (await uploaded.json()) as { digest: string };
  expect(await done(upload('hello contract\n'))).toBe(200);
  expect(await done(upload('other', `?digest=${NOT_STORED}`))).toBe(422);
  expect(await done(upload('x', '?digest=md5:1'))).toBe(400);
  expect(await done(upload('x', '?unknown=1'))).toBe(400);
  expect(await done(upload('x'.repeat(UPLOAD_LIMIT + 1)))).toBe(413);
  expect(await done(call(`/v1/blobs/${digest}`))).toBe(200);
  expect(await done(call(`/v1/blobs/${digest}`, { headers: { range: 'bytes=0-3' } }))).toBe(206);
  expect(await done(call(`/v1/blobs/${digest}`, { headers: { range: 'bytes=1000-2000' } }))).toBe(416);
  expect(await done(call(`/v1/blobs/${digest}`, { method: 'HEAD' }))).toBe(200);
  expect(await done(call(`/v1/blobs/${NOT_STORED}`))).toBe(404);
  expect(await done(call(`/v1/blobs/${NOT_STORED}`, { method: 'HEAD' }))).toBe(404);
  expect(await done(call('/v1/blobs/not-a-digest'))).toBe(400);

  // Builds: mistakes, a dry run, a build, the same build again from the cache.
  const spec = {
    name: 'contract',
    tag: '1',
    contents: [
      { file: digest, to: '/hello', mode: '0644' },
      { text: 'hi\n', to: '/etc/motd' },
    ],
  };
  expect(await done(call('/v1/builds', json({ ...spec, contents: [{ text: 'x', to: '/x', mode: 7 }] })))).toBe(400);
  expect(await done(call('/v1/builds', { ...json(spec), body: '{"name":' }))).toBe(400);
  expect(await done(call('/v1/builds?dryRun=maybe', json(spec)))).toBe(400);
  expect(await done(call('/v1/builds', { ...json(spec), headers: { 'content-type': 'application/x-www-form-urlencoded' } }))).toBe(415);
  expect(await done(call('/v1/builds', json({ ...spec, contents: [{ text: 'x'.repeat(JSON_LIMIT), to: '/big' }] })))).toBe(413);
  expect(await done(call('/v1/builds', json({ ...spec, contents: [{ tar: NOT_STORED }] })))).toBe(422);
  expect(await done(call('/v1/builds', json({ ...spec, fromImage: { build: 'aaaaaaaaaaaaaaaaaaaaaaaaaa' } })))).toBe(422);
  expect(await done(call('/v1/builds?dryRun=true', json(spec)))).toBe(200);
  const submitted = await call('/v1/builds', json(spec));
  expect(submitted.status).toBe(202);
  const { id: buildId } = (await submitted.json()) as { id: string };
  expect(await waitFinished(buildId)).toBe('succeeded');
  expect(await done(call('/v1/builds?dryRun=true', json(spec)))).toBe(200);
  expect(await done(call('/v1/builds?dryRun=true', json({ ...spec, fromImage: { build: buildId }, runAsRoot: 'true' })))).toBe(200);
  expect(await done(call('/v1/builds', json(spec)))).toBe(201);

  // A finished build: its record, log, image in several forms, and what cannot be done to it.
  expect(await done(call(`/v1/builds/${buildId}`))).toBe(200);
  expect(await done(call(`/v1/builds/${buildId}/logs`))).toBe(200);
  expect(await done(call(`/v1/builds/${buildId}/image`))).toBe(200);
  expect(await done(call(`/v1/builds/${buildId}/image?compression=none`))).toBe(200);
  expect(await done(call(`/v1/builds/${buildId}/image`, { headers: { range: 'bytes=0-9' } }))).toBe(206);
  expect(await done(call(`/v1/builds/${buildId}/image`, { headers: { range: 'bytes=999999999-' } }))).toBe(416);
  expect(await done(call(`/v1/builds/${buildId}/image`, { method: 'HEAD' }))).toBe(200);
  expect(await done(call(`/v1/builds/${buildId}/image?format=oci-archive&compression=none`))).toBe(200);
  expect(await done(call(`/v1/builds/${buildId}/image?format=docker-archive&compression=zstd`))).toBe(400);
  expect(await done(call(`/v1/builds/${buildId}/image?format=zip`))).toBe(400);
  expect(await done(call(`/v1/builds/${buildId}/sbom?format=cyclonedx`))).toBe(200);
  expect(await done(call(`/v1/builds/${buildId}/sbom?envelope=1`))).toBe(200);
  expect(await done(call(`/v1/builds/${buildId}/provenance`))).toBe(200);
  expect(await done(call(`/v1/builds/${buildId}/sbom?format=xml`))).toBe(400);
  expect(await done(call(`/v1/builds/${buildId}`, { method: 'DELETE' }))).toBe(409);
  expect(await done(call(`/v1/builds/${buildId}/cancel`, { method: 'POST' }))).toBe(409);
  for (const path of ['', '/logs', '/image', '/sbom', '/provenance']) expect(await done(call(`/v1/builds/aaaaaaaaaaaaaaaaaaaaaaaaaa${path}`))).toBe(404);
  expect(await done(call('/v1/builds/aaaaaaaaaaaaaaaaaaaaaaaaaa/image', { method: 'HEAD' }))).toBe(404);
  expect(await done(call('/v1/builds/aaaaaaaaaaaaaaaaaaaaaaaaaa', { method: 'DELETE' }))).toBe(404);

  // Rebuild to verify: the verification build, then its outcome and statement on the original.
  expect(await done(call(`/v1/builds/${buildId}/verification`))).toBe(404);
  const verify = await call(`/v1/builds/${buildId}/verify`, { method: 'POST' });
  expect(verify.status).toBe(202);
  const { id: verificationId } = (await verify.json()) as { id: string };
  expect(await waitFinished(verificationId)).toBe('succeeded');
  for (const deadline = Date.now() + 30_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 100))) {
    if (((await (await call(`/v1/builds/${buildId}`)).json()) as { verification?: unknown }).verification) break;
  }
  expect(await done(call(`/v1/builds/${buildId}`))).toBe(200);
  expect(await done(call(`/v1/builds/${buildId}/verification`))).toBe(200);
  expect(await done(call('/v1/builds/aaaaaaaaaaaaaaaaaaaaaaaaaa/verify', { method: 'POST' }))).toBe(404);

  // Merges and pushes.
  expect(await done(call('/v1/merges', json({ builds: [buildId] })))).toBe(201);
  expect(await done(call('/v1/merges', json({ builds: [] })))).toBe(400);
  expect(await done(call('/v1/merges', json({ builds: ['aaaaaaaaaaaaaaaaaaaaaaaaaa'] })))).toBe(404);
  expect(await done(call('/v1/merges', { ...json({}), headers: { 'content-type': 'application/x-www-form-urlencoded' } }))).toBe(415);
  expect(await done(call(`/v1/builds/${buildId}/push`, json({ ref: 'registry.invalid:5000/x:1' })))).toBe(422);
  expect(await done(call(`/v1/builds/${buildId}/push`, json({})))).toBe(400);
  expect(await done(call('/v1/builds/aaaaaaaaaaaaaaaaaaaaaaaaaa/push', json({ ref: 'localhost:5000/x:1' })))).toBe(404);

  // Paths and methods that do not exist.
  expect(await done(call('/v1/builds', { method: 'PUT' }))).toBe(405);
  expect(await done(call(`/v1/blobs/${digest}`, { method: 'DELETE' }))).toBe(405);
  expect(await done(call('/v2/nothing'))).toBe(404);

  // A queue that never drains: a queued build, the tenant's quota, what waits on a build.
  const queued = (await (await call('/v1/builds', json({ name: 'waits' }), queueOnly)).json()) as { id: string };
  expect(await done(call('/v1/builds', json({ name: 'over-quota' }), queueOnly))).toBe(429);
  expect(await done(call(`/v1/builds/${queued.id}/image`, {}, queueOnly))).toBe(409);
  expect(await done(call(`/v1/builds/${queued.id}/sbom`, {}, queueOnly))).toBe(409);
  expect(await done(call(`/v1/builds/${queued.id}/provenance`, {}, queueOnly))).toBe(409);
  expect(await done(call(`/v1/builds/${queued.id}/image`, { method: 'HEAD' }, queueOnly))).toBe(409);
  expect(await done(call('/v1/merges', json({ builds: [queued.id] }), queueOnly))).toBe(409);
  expect(await done(call(`/v1/builds/${queued.id}/push`, json({ ref: 'localhost:5000/x:1' }), queueOnly))).toBe(409);
  expect(await done(call(`/v1/builds/${queued.id}/verify`, { method: 'POST' }, queueOnly))).toBe(409);
  expect(await done(call(`/v1/builds/${queued.id}/cancel`, { method: 'POST' }, queueOnly))).toBe(200);
  const again = (await (await call('/v1/builds', json({ name: 'waits-too' }), queueOnly)).json()) as { id: string };
  expect(await done(call(`/v1/builds/${again.id}`, { method: 'DELETE' }, queueOnly))).toBe(200);
  return { buildId, digest };
}

/**
 * Every documented GET, with its path parameters filled in from the run above: routes that
 * other parts of the service add (streams included) are answered and recorded too. A stream
 * is read for a moment and then dropped: its status and media type are what is checked.
 */
async function probeDocumentedReads(values: Record<string, string>): Promise<void> {
  for (const [path, item] of Object.entries(openApiDocument().paths)) {
    if (!item.get) continue;
    const url = path.replace(/\{([^}]+)\}/g, (_, name: string) => values[name] ?? 'x');
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), 2000);
    try {
      const res = await call(url, { signal: abort.signal });
      await res.arrayBuffer().catch(() => undefined);
    } catch (err) {
      if (!abort.signal.aborted) throw err;
    } finally {
      clearTimeout(timer);
    }
  }
}

describe('openapi.yaml against the running service', () => {
  let responses: ResponseLine[];

  beforeAll(async () => {
    const { buildId, digest } = await exercise();
    await probeDocumentedReads({ id: buildId, digest, asset: 'init.js', file: 'app.js' });
    responses = (await readContractLog(logs)).responses;
  }, 300_000);

  it('documents every route the service registers, and the service serves every documented operation', async () => {
    const { routes } = await readContractLog(logs);
    expect(routes.length).toBeGreaterThan(10);
    expect(undocumentedRoutes(routes)).toEqual([]);
    expect(unservedOperations(routes)).toEqual([]);
  });

  it('documents every status and media type the service sent, and every JSON body matches its schema', () => {
    const violations = responses.map(responseViolation).filter((v) => v !== null);
    expect(violations).toEqual([]);
  });

  it('the run was representative: successes and every reachable client error were recorded', () => {
    const statuses = new Set(responses.map((r) => r.status));
    for (const status of [200, 201, 202, 206, 400, 401, 404, 405, 409, 413, 415, 416, 422, 429]) expect(statuses, String(status)).toContain(status);
    const documented = Object.values(openApiDocument().paths).flatMap((item) => HTTP_METHODS.filter((m) => item[m]).length);
    expect(responses.length).toBeGreaterThan(documented.reduce((a, b) => a + b, 0));
  });
});
