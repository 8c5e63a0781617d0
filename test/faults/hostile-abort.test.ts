/**
 * Abort anywhere (issue 12, attack 3): a cancel and the build time limit take effect within
 * 2 s whatever the build is doing, its synchronous parsing of a hostile tar included. The tar
 * is the dir/file churn (300,000 files, then 20,000 `x/` and `x` pairs), whose honest
 * processing alone takes longer than the moments these tests wait before stopping it.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildOutcome, runAttack } from '../support/hostile/attack.ts';
import { writeDirFileChurn } from '../support/hostile/dir-file-churn.ts';
import { startHostileService, type HostileService } from '../support/hostile/hostile-service.ts';
import { ATTACK_MS } from '../support/hostile/timing.ts';
import { attemptEndedAt, buildLogLines } from '../support/hostile/worker-log.ts';
import { until } from '../support/wait.ts';

const ATTACKER = 'aborts';
/** The build time limit here: shorter than the churn takes, longer than a normal build. */
const BUILD_TIMEOUT_S = 4;
const ABORT_WITHIN_MS = 2000;
let hostile: HostileService;
let work: string;
/** The churn tar's path: uploaded by each test (an earlier one may have left a fresh service). */
let churn: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'baler-hostile-abort-'));
  hostile = await startHostileService({ tenants: [ATTACKER], quota: 4 * 1024 ** 3, env: { BALER_BUILD_TIMEOUT_S: String(BUILD_TIMEOUT_S) } });
  churn = await writeDirFileChurn(join(work, 'churn.tar.gz'));
}, 180_000);

afterAll(async () => {
  await hostile?.stop();
  await rm(work, { recursive: true, force: true });
}, 60_000);

const spec = async () => ({ name: 'hostile/churn', contents: [{ tar: await hostile.as(ATTACKER).uploadOk(churn) }] });

it(
  'a cancel one second into the churn stops the worker on it within 2 s',
  async () => {
    const client = hostile.as(ATTACKER);
    const churnSpec = await spec();
    const report = await runAttack(hostile, 'cancel during a long parse', async () => {
      const id = await client.submitOk(churnSpec, '?noCache=true');
      await until(async () => (await client.build(id)).status !== 'queued', 60_000);
      await new Promise((r) => setTimeout(r, 1000));
      const cancelledAt = Date.now();
      const res = await client.cancel(id);
      if (res.status !== 200 && res.status !== 202) {
        return { outcome: `cancel answered ${res.status} (the build ended before it: make the churn bigger)` };
      }
      // The record says `cancelled` at once; the worker's log says when it let go.
      const ended = await until(() => attemptEndedAt(hostile.service, id) !== undefined, ATTACK_MS).then(
        () => attemptEndedAt(hostile.service, id) as number,
        () => undefined,
      );
      if (ended === undefined) return { outcome: `worker still at it ${ATTACK_MS / 1000} s after the cancel`, stuck: true };
      return {
        outcome: (await client.build(id)).status,
        timeToEndMs: ended - cancelledAt,
        detail: buildLogLines(hostile.service, id)
          .filter((l) => l.startsWith('baler-worker'))
          .at(-1),
      };
    });
    expect(report.result.outcome).toBe('cancelled');
    expect(report.result.timeToEndMs, 'ms from the cancel to the worker letting go').toBeLessThanOrEqual(ABORT_WITHIN_MS);
  },
  ATTACK_MS + 180_000,
);

it(
  `the build time limit (${BUILD_TIMEOUT_S} s) ends the churn within 2 s of it`,
  async () => {
    const client = hostile.as(ATTACKER);
    const churnSpec = await spec();
    const report = await runAttack(hostile, 'time limit during a long parse', async () => {
      const id = await client.submitOk(churnSpec, '?noCache=true');
      const result = await buildOutcome(client, id, Date.now(), ATTACK_MS);
      const build = (await client.build(id)) as { startedAt?: string; finishedAt?: string };
      // Timed from the attempt's start: the limit counts from there.
      if (!result.stuck && build.startedAt && build.finishedAt) result.timeToEndMs = Date.parse(build.finishedAt) - Date.parse(build.startedAt);
      return result;
    });
    expect(report.result.outcome).toBe('failed 422');
    expect(report.result.detail).toMatch(/timed out/);
    expect(report.result.timeToEndMs, 'ms from the attempt start to its end').toBeLessThanOrEqual(BUILD_TIMEOUT_S * 1000 + ABORT_WITHIN_MS);
  },
  ATTACK_MS + 180_000,
);
