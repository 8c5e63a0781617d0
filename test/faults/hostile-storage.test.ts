/**
 * Every stored byte is charged (issue 12, attack 4), under a 4 MiB BALER_TENANT_MAX_STORED_BYTES:
 * a spec naming one 1 MiB blob 300 times, uploads racing the quota in parallel (with and
 * without a Content-Length), a merge over the quota. Over it: 413 or 507 with a problem
 * document, nothing half-stored; what is charged (read from Redis) never passes the quota.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { refusal, runAttack, submitAndWait } from '../support/hostile/attack.ts';
import { startHostileService, type HostileService } from '../support/hostile/hostile-service.ts';
import { raceUploads } from '../support/hostile/quota-race.ts';
import { fillQuota } from '../support/hostile/quota-filler.ts';
import { amplifiedSpec } from '../support/hostile/spec-amplification.ts';
import { chargedBytes, storeBytes } from '../support/hostile/tenant-bytes.ts';
import { ATTACK_MS } from '../support/hostile/timing.ts';

const MiB = 1024 * 1024;
const QUOTA = 4 * MiB;
let hostile: HostileService;

beforeAll(async () => {
  hostile = await startHostileService({ tenants: ['amplify', 'race', 'race-streamed', 'merge'], quota: QUOTA });
}, 180_000);

afterAll(async () => hostile?.stop(), 60_000);

/** A build's problem, or a request's, over the quota: 413 (the tenant's) or 507 (the store's). */
function expectOverQuota(result: { status?: number; detail?: string; outcome: string }): void {
  expect([413, 507], `${result.outcome}: ${result.detail}`).toContain(result.status);
  expect(result.detail).toMatch(/quota|space|full/i);
}

it(
  "a spec naming one 1 MiB blob 300 times fails over the tenant's 4 MiB quota, storing nothing of it",
  async () => {
    const client = hostile.as('amplify');
    const blob = await client.uploadOk(randomBytes(MiB));
    const report = await runAttack(
      hostile,
      'spec amplification (1 MiB × 300)',
      async () => {
        const storedBefore = await storeBytes(hostile.service.storeDir);
        const result = await submitAndWait(client, amplifiedSpec(blob), ATTACK_MS);
        const grown = (await storeBytes(hostile.service.storeDir)) - storedBefore;
        return { ...result, outcome: `${result.outcome}, store grew ${Math.round(grown / MiB)} MiB`, grown };
      },
      { chargedTenant: 'amplify' },
    );
    expectOverQuota(report.result);
    expect(report.charged).toBeLessThanOrEqual(QUOTA);
    // Nothing half-stored: the store grew by no more than the quota allows.
    expect(report.result.grown).toBeLessThanOrEqual(QUOTA);
  },
  ATTACK_MS + 120_000,
);

it.each([
  ['with a Content-Length', 'race', false],
  ['streamed without a Content-Length', 'race-streamed', true],
] as const)(
  'eight 1 MiB uploads %s racing a 4 MiB quota: at most the quota gets in, the rest is 413',
  async (how, tenant, streamed) => {
    const client = hostile.as(tenant);
    const report = await runAttack(
      hostile,
      `parallel uploads racing a quota (8 × 1 MiB, ${how})`,
      async () => {
        const startedAt = Date.now();
        const race = await raceUploads(client, 8, MiB, { streamed });
        const refused = race.statuses.filter((s) => s !== 201 && s !== 200);
        return {
          outcome: `${race.statuses.length - refused.length} stored, ${refused.length} refused (${[...new Set(refused)].join(', ') || 'none'})`,
          timeToEndMs: Date.now() - startedAt,
          statuses: race.statuses,
          acceptedBytes: race.acceptedBytes,
        };
      },
      { chargedTenant: tenant },
    );
    expect(report.result.acceptedBytes).toBeLessThanOrEqual(QUOTA);
    expect(report.charged).toBeLessThanOrEqual(QUOTA);
    // 0: refused while still sending, the connection reset (SECURITY.md says a client may see that).
    for (const status of report.result.statuses) expect([200, 201, 413, 0]).toContain(status);
    // A declared length is reserved whole before the body is read: exactly those that fit get in.
    if (!streamed) expect(report.result.acceptedBytes).toBe(QUOTA);
  },
  120_000,
);

it('a merge that would pass the quota is refused with 413/507, and nothing is charged for it', async () => {
  const client = hostile.as('merge');
  const builds: string[] = [];
  for (const i of [1, 2]) {
    const blob = await client.uploadOk(randomBytes(MiB / 2));
    const built = await submitAndWait(client, { name: 'hostile/merge-part', tag: `p${i}`, compression: 'none', contents: [{ file: blob, to: '/part' }] }, 60_000);
    expect(built.outcome, built.detail).toBe('succeeded');
    builds.push(built.build?.id as string);
  }
  // Half a MiB of room left: the merge (both images, more than 1 MiB) does not fit.
  const before = await fillQuota(client, hostile.service.redisUrl, QUOTA, MiB / 2);
  const report = await runAttack(
    hostile,
    'merge over quota',
    async () => {
      const startedAt = Date.now();
      const res = await client.request('/v1/merges', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ builds }) });
      if (res.status === 201) return { outcome: 'merged (201)', status: 201, timeToEndMs: Date.now() - startedAt };
      return refusal(res, 'merge', startedAt);
    },
    { chargedTenant: 'merge' },
  );
  expectOverQuota(report.result);
  expect(report.charged).toBe(before);
  expect(await chargedBytes(hostile.service.redisUrl, 'merge')).toBeLessThanOrEqual(QUOTA);
}, 180_000);
