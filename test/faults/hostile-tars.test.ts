/**
 * Hostile contents tars (issue 12, attacks 1, 3 and 9, and the pathological shapes of "What
 * to build"), each against the real service and its real worker process: a global PAX header
 * copied into every entry, directory/file churn, a deep and a wide tree, more entries than a
 * layer may hold, PAX mtimes that are no numbers. Throughout each: the worker never restarts,
 * its event-loop delay p99 stays under 200 ms and its RSS under 512 MiB, and a bystander's
 * normal build right after succeeds within 30 s.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runAttack, submitAndWait } from '../support/hostile/attack.ts';
import { BUDGETS, budgetNamed } from '../support/hostile/budgets.ts';
import { writeDeepTree, writeWideTree } from '../support/hostile/deep-wide-trees.ts';
import { writeDirFileChurn } from '../support/hostile/dir-file-churn.ts';
import { writeGlobalPaxBomb } from '../support/hostile/global-pax-bomb.ts';
import { startHostileService, type HostileService } from '../support/hostile/hostile-service.ts';
import { writeHugeEntryCount } from '../support/hostile/huge-entry-count.ts';
import { BAD_PAX_MTIMES, writePaxMtime } from '../support/hostile/pax-mtime.ts';
import { ATTACK_MS } from '../support/hostile/timing.ts';

const ATTACKER = 'tars';
let hostile: HostileService;
let work: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'baler-hostile-tars-'));
  // Storage is not what these attacks are about: room for every layer they could make.
  hostile = await startHostileService({ tenants: [ATTACKER], quota: 4 * 1024 ** 3 });
}, 180_000);

afterAll(async () => {
  await hostile?.stop();
  await rm(work, { recursive: true, force: true });
}, 60_000);

const contentsOf = async (path: string) => ({ name: 'hostile/tar', contents: [{ tar: await hostile.as(ATTACKER).uploadOk(path) }] });

/** A refusal that names one of `budgets` (BudgetExceededError: "(the budget X is N)"). */
function expectBudget(result: { outcome: string; status?: number; detail?: string }, budgets: string[]): void {
  expect(result.status, `${result.outcome}: ${result.detail}`).toBe(422);
  expect(budgets, result.detail).toContain(budgetNamed(result.detail));
}

const ENTRIES = [BUDGETS.layerEntries, BUDGETS.buildEntries];
const PAX = [BUDGETS.globalPaxRecords, BUDGETS.entryPaxRecords, BUDGETS.entryXattrs, BUDGETS.entryXattrBytes, BUDGETS.tarExtensionBytes];

interface TarAttack {
  title: string;
  attack: string;
  write: (path: string) => Promise<string>;
  /** The budgets a refusal may name. */
  budgets: string[];
  /** Whether building it is fine too (an honest if large tree), as long as the worker is unharmed. */
  mayBuild: boolean;
}

const TAR_ATTACKS: TarAttack[] = [
  {
    title: 'a global PAX header of 1 MiB of xattrs before 8,000 files fails with 422 naming a PAX budget',
    attack: 'global PAX header bomb',
    write: (path) => writeGlobalPaxBomb(path),
    budgets: PAX,
    mayBuild: false,
  },
  {
    title: '300,000 files then 20,000 x/ and x pairs: ends (built, or refused over an entries budget) without blocking the worker',
    attack: 'dir/file churn',
    write: (path) => writeDirFileChurn(path),
    budgets: ENTRIES,
    mayBuild: true,
  },
  {
    title: '20,000 files at the bottom of a 2,000-deep directory chain: ends without blocking the worker',
    attack: 'deep tree',
    write: (path) => writeDeepTree(path),
    budgets: [...ENTRIES, ...PAX],
    mayBuild: true,
  },
  {
    title: 'one directory of 500,000 files: ends without blocking the worker',
    attack: 'wide tree',
    write: (path) => writeWideTree(path),
    budgets: ENTRIES,
    mayBuild: true,
  },
  {
    title: "1,000,001 entries fails with 422 naming an entries budget, within the worker's memory",
    attack: 'huge entry count',
    write: (path) => writeHugeEntryCount(path),
    budgets: ENTRIES,
    mayBuild: false,
  },
];

for (const { title, attack, write, budgets, mayBuild } of TAR_ATTACKS) {
  it(
    title,
    async () => {
      const spec = await contentsOf(await write(join(work, `${attack.replace(/\W+/g, '-')}.tar.gz`)));
      const report = await runAttack(hostile, attack, () => submitAndWait(hostile.as(ATTACKER), spec, ATTACK_MS), { chargedTenant: ATTACKER });
      if (!(mayBuild && report.result.outcome === 'succeeded')) expectBudget(report.result, budgets);
    },
    ATTACK_MS + 120_000,
  );
}

it.each(BAD_PAX_MTIMES)(
  "a PAX mtime of '%s' fails with 422 saying the mtime is invalid (never NaN or Infinity in a header)",
  async (mtime) => {
    const spec = await contentsOf(await writePaxMtime(join(work, `mtime-${mtime}.tar`), mtime));
    const report = await runAttack(hostile, `PAX mtime ${mtime}`, () => submitAndWait(hostile.as(ATTACKER), spec, 60_000), { chargedTenant: ATTACKER });
    expect(report.result.status, report.result.outcome).toBe(422);
    expect(report.result.detail).toMatch(/mtime/);
  },
  180_000,
);
