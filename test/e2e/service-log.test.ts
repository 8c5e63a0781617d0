/**
 * The service's own log (pino JSON on stdout, API and worker) end to end: every line about a
 * build names the build and its job, each state change is one line with how long the build
 * was in the state it left, and what scripts print goes to the build log, never to the
 * service's.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startService, submitBuild, waitForBuild, type Service } from '../support/service.ts';
import { until } from '../support/wait.ts';

let service: Service;
/** Printed by the scripts; assembled at run time, so neither the script text nor the output contains it whole. */
const SECRET = randomBytes(8).toString('hex');
const ECHO_SECRET = `half=${SECRET.slice(0, 8)}; echo "secret: \${half}${SECRET.slice(8)}"`;

type Line = Record<string, unknown>;
const lines = (): Line[] =>
  service
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Line);
const about = (id: string) => lines().filter((l) => JSON.stringify(l).includes(id));
const stateLine = (id: string, status: string) => lines().find((l) => l.buildId === id && l.status === status);

const ids: Record<string, string> = {};

beforeAll(async () => {
  service = await startService({ BALER_BUILD_ATTEMPTS: '1' });
  const tag = randomBytes(4).toString('hex');
  // Prints the secret in its VM, then runs until cancelled; meanwhile the only worker is busy
  // with it, so the next build waits in the queue, and is cancelled there.
  ids.running = await submitBuild(service, { name: 'logs/running', tag, runAsRoot: `${ECHO_SECRET}; echo started; sleep 600`, timeout: 600 });
  await until(async () => (await (await fetch(`${service.url}/v1/builds/${ids.running}/logs`)).text()).includes('started'), 300_000);
  ids.queued = await submitBuild(service, { name: 'logs/queued', tag, contents: [{ text: 'q', to: '/q' }] });
  for (const id of [ids.queued, ids.running]) expect((await fetch(`${service.url}/v1/builds/${id}`, { method: 'DELETE' })).status).toBe(200);
  const pure = { name: 'logs/pure', tag, contents: [{ text: 'hi\n', to: '/hi' }] };
  ids.pure = await submitBuild(service, pure);
  // A path with `..` fails the build on the worker.
  ids.failing = await submitBuild(service, { name: 'logs/failing', tag, contents: [{ text: 'x', to: 'a/../../escape' }] });
  for (const id of [ids.pure, ids.failing]) await waitForBuild(service, id as string, 300_000);
  ids.cached = await submitBuild(service, pure);
  // Lines come after the records change, and through a pipe.
  await until(() => lines().some((l) => l.buildId === ids.running && l.msg === 'build stopped: it was cancelled'), 60_000);
  await until(() => stateLine(ids.failing as string, 'failed') !== undefined && stateLine(ids.cached as string, 'succeeded') !== undefined, 60_000);
}, 600_000);

afterAll(async () => {
  await service?.stop();
});

it('names the build and its job on every line about a build', () => {
  for (const [what, id] of Object.entries(ids)) {
    const mine = about(id);
    expect(mine.length, what).toBeGreaterThan(0);
    for (const line of mine) {
      // Its own lines, or the line of the build-cache hit that reused its result.
      expect(line.buildId === id || line.cachedFrom === id, `${what}: ${JSON.stringify(line)}`).toBe(true);
      // A build's job id is its build id; a build-cache hit never has a job.
      expect(line.jobId, `${what}: ${JSON.stringify(line)}`).toBe(line.buildId === ids.cached ? null : line.buildId);
    }
  }
  // What is not JSON (Node's own warnings) says nothing about builds.
  const other = service
    .output()
    .split('\n')
    .filter((l) => !l.startsWith('{'));
  for (const id of Object.values(ids)) expect(other.join('\n')).not.toContain(id);
});

it('writes one line per state change, with how long the build was in the state it left', () => {
  const ms = (line: Line | undefined, field: string) => {
    expect(line, field).toBeDefined();
    expect(typeof line?.[field], `${field} in ${JSON.stringify(line)}`).toBe('number');
    expect(line?.[field] as number).toBeGreaterThanOrEqual(0);
  };
  for (const id of [ids.pure, ids.failing, ids.running, ids.queued] as string[]) {
    expect(lines().filter((l) => l.buildId === id && l.status === 'queued')).toHaveLength(1);
  }
  for (const id of [ids.pure, ids.failing, ids.running] as string[]) {
    const running = lines().filter((l) => l.buildId === id && l.status === 'running');
    expect(running).toHaveLength(1);
    ms(running[0], 'queuedMs');
  }
  ms(stateLine(ids.pure as string, 'succeeded'), 'runningMs');
  ms(stateLine(ids.failing as string, 'failed'), 'runningMs');
  ms(stateLine(ids.running as string, 'cancelled'), 'runningMs');
  ms(stateLine(ids.queued as string, 'cancelled'), 'queuedMs');
  expect(stateLine(ids.queued as string, 'running')).toBeUndefined();
  expect(stateLine(ids.cached as string, 'succeeded')?.cachedFrom).toBe(ids.pure);
  for (const id of Object.values(ids)) {
    const changes = lines().filter((l) => l.buildId === id && typeof l.status === 'string');
    // queued, running, the end (a cache hit: only the end); never one twice.
    expect(new Set(changes.map((l) => l.status)).size).toBe(changes.length);
  }
});

it("keeps the scripts' output out of the service log (it is in the build log)", async () => {
  expect(await (await fetch(`${service.url}/v1/builds/${ids.running}/logs`)).text()).toContain(`secret: ${SECRET}`);
  expect(service.output()).not.toContain(SECRET);
  // Nor the scripts themselves.
  expect(service.output()).not.toContain(SECRET.slice(8));
});
