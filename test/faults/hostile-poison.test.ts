/**
 * Poison builds (issue 12, "What to build"): a build whose attempt ended with its worker
 * process dying is tried at most once more; if that attempt dies too it ends `failed` ("the
 * build stopped its worker twice"), and the worker log names it. Here the test is the kernel's
 * OOM killer: it SIGKILLs the worker every time that worker starts this build, and a third
 * worker must never get to start it. (The worker restarts here by design: twice.)
 */
import { rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runAttack, type AttackResult } from '../support/hostile/attack.ts';
import { startHostileService, type HostileService } from '../support/hostile/hostile-service.ts';
import { ATTACK_MS } from '../support/hostile/timing.ts';
import { attemptStarts, buildLogLines } from '../support/hostile/worker-log.ts';
import { busyboxTar } from '../support/images.ts';
import { pidMentions } from '../support/run.ts';

const ATTACKER = 'poison';
/** Kills beyond the two the service should allow, so that a service that does not stop is seen. */
const MAX_KILLS = 4;
let hostile: HostileService;
let busybox: string;

beforeAll(async () => {
  // Short locks: a dead worker's build is noticed in seconds.
  hostile = await startHostileService({ tenants: [ATTACKER], quota: 1024 ** 3, env: { BALER_JOB_LOCK_MS: '4000', BALER_STALLED_CHECK_MS: '2000' } });
  const tar = await busyboxTar();
  busybox = await hostile.as(ATTACKER).uploadOk(tar);
  await rm(dirname(tar), { recursive: true, force: true });
}, 180_000);

afterAll(async () => hostile?.stop(), 60_000);

it(
  'a build whose worker is killed every time it runs it ends failed after two workers, and a third never runs it',
  async () => {
    const client = hostile.as(ATTACKER);
    // Long enough (80 copies of busybox) that the kill lands while the worker is at it.
    const spec = { name: 'hostile/poison', contents: [{ tar: busybox }, ...Array.from({ length: 80 }, (_, i) => ({ tar: busybox, to: `/copies/${i}` }))] };
    const report = await runAttack(
      hostile,
      'worker killed on every attempt (poison build)',
      async (): Promise<AttackResult & { kills: number; starts: number }> => {
        const startedAt = Date.now();
        const id = await client.submitOk(spec, '?noCache=true');
        const killed = new Set<number>();
        const deadline = Date.now() + ATTACK_MS;
        for (;;) {
          for (const start of attemptStarts(hostile.service, id)) {
            if (killed.has(start.pid) || killed.size >= MAX_KILLS) continue;
            // Only the worker process that logged the start, if it still is one.
            if (pidMentions(start.pid, 'build-worker')) process.kill(start.pid, 'SIGKILL');
            killed.add(start.pid);
          }
          const build = await client.build(id);
          if (['succeeded', 'failed', 'cancelled'].includes(build.status) || Date.now() > deadline) {
            const ended = Date.parse((build as { finishedAt?: string }).finishedAt ?? '') || Date.now();
            const starts = attemptStarts(hostile.service, id).length;
            const stuck = !['succeeded', 'failed', 'cancelled'].includes(build.status);
            const how = build.error ? `${build.status} ${build.error.status}` : build.status;
            return {
              outcome: `${how} after ${starts} starts, ${killed.size} killed`,
              detail: build.error?.detail,
              status: build.error?.status,
              timeToEndMs: stuck ? undefined : ended - startedAt,
              stuck,
              build,
              kills: killed.size,
              starts,
            };
          }
          await new Promise((r) => setTimeout(r, 50));
        }
      },
      { restartsAllowed: 2 },
    );
    expect(report.result.build?.status, report.result.outcome).toBe('failed');
    expect(report.result.detail).toMatch(/stopped its worker twice/);
    expect(report.result.starts, 'workers that started the build').toBe(2);
    expect(report.result.kills).toBe(2);
    expect(buildLogLines(hostile.service, report.result.build?.id as string).join('\n'), 'the worker log names the poison build').toMatch(/twice|poison/i);
  },
  ATTACK_MS + 180_000,
);
