/**
 * `GET /docs` renders openapi.yaml in a real browser (Debian's headless Chromium) with every
 * other host unresolvable: the page needs nothing but this server (no CDN).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { openApiDocument } from '../../src/api/openapi.ts';
import { run } from '../support/run.ts';
import { startService, type Service } from '../support/service.ts';

let service: Service;
let profile: string;

beforeAll(async () => {
  profile = await mkdtemp(join(tmpdir(), 'baler-docs-chromium-'));
  service = await startService({ BALER_LOCAL_WORKERS: '0' });
}, 120_000);

afterAll(async () => {
  await service?.stop();
  await rm(profile, { recursive: true, force: true });
});

it('renders every documented operation, loading nothing from elsewhere', async () => {
  const { stdout } = await run(
    'chromium',
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      `--user-data-dir=${profile}`,
      // Any host but this service's fails to resolve: a page needing a CDN would stay blank.
      '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
      '--virtual-time-budget=20000',
      '--dump-dom',
      `${service.url}/docs`,
    ],
    { timeoutMs: 170_000 },
  );
  // Swagger UI gives each operation an element `operations-<tag>-<operationId>`.
  const rendered = [...stdout.matchAll(/id="operations-default-([A-Za-z]+)"/g)].map((m) => m[1]);
  const documented = Object.values(openApiDocument().paths).flatMap((item) => Object.values(item).flatMap((op) => (op && typeof op === 'object' && 'operationId' in op ? [op.operationId] : [])));
  expect(documented.length).toBeGreaterThan(10);
  expect(rendered.sort()).toEqual(documented.sort());
}, 180_000);
