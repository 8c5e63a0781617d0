/**
 * A hostile docker-archive base (issue 12, attack 2): `manifest.json` lists 25,000 images and
 * `repositories` names 25,000 more. Matching names to images must not be names × images on
 * the worker's event loop, and the refusal must name the budget, not every image.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ARCHIVE_INDEX_BOMB, writeArchiveIndexBomb } from '../support/hostile/archive-index-bomb.ts';
import { runAttack, submitAndWait } from '../support/hostile/attack.ts';
import { BUDGETS, MAX_ERROR_TEXT_CHARS, budgetNamed } from '../support/hostile/budgets.ts';
import { startHostileService, type HostileService } from '../support/hostile/hostile-service.ts';
import { ATTACK_MS } from '../support/hostile/timing.ts';

const ATTACKER = 'archives';
let hostile: HostileService;
let work: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'baler-hostile-archives-'));
  hostile = await startHostileService({ tenants: [ATTACKER], quota: 256 * 1024 * 1024 });
}, 180_000);

afterAll(async () => {
  await hostile?.stop();
  await rm(work, { recursive: true, force: true });
}, 60_000);

it(
  `a base archive of ${ARCHIVE_INDEX_BOMB.images} images and ${ARCHIVE_INDEX_BOMB.names} more names fails with 422 naming the budget, in a short error`,
  async () => {
    const client = hostile.as(ATTACKER);
    const blob = await client.uploadOk(await writeArchiveIndexBomb(join(work, 'index-bomb.tar')));
    const report = await runAttack(hostile, 'archive index bomb', () => submitAndWait(client, { name: 'hostile/on-archive', fromImage: { blob } }, ATTACK_MS), { chargedTenant: ATTACKER });
    expect(report.result.status, report.result.outcome).toBe(422);
    expect([BUDGETS.archiveImages, BUDGETS.archiveNames], report.result.detail?.slice(0, 300)).toContain(budgetNamed(report.result.detail));
    expect((report.result.detail ?? '').length).toBeLessThanOrEqual(MAX_ERROR_TEXT_CHARS);
  },
  ATTACK_MS + 120_000,
);
