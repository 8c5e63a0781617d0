/**
 * Runs one attack against a hostile service and measures it: the worker's pid, memory and
 * event-loop delay throughout (worker-watch.ts), the attack's outcome and time, the bytes
 * charged to the attacking tenant, and a bystander's normal build right after. Writes the row
 * of the fault table, and checks (softly) what every hostile test must hold (acceptance.ts).
 * A service an attack left unusable is replaced for the tests after it.
 */
import type { BuildView } from '../service.ts';
import { expectWorkerUnharmed, NORMAL_BUILD_MS } from './acceptance.ts';
import { appendFaultRow } from './fault-table.ts';
import { BYSTANDER, problemOf, type HostileService, type TenantClient } from './hostile-service.ts';
import { chargedBytes } from './tenant-bytes.ts';
import { WorkerWatch, type WorkerMeasurements } from './worker-watch.ts';

export interface AttackResult {
  /** What the attacker got: `failed 422`, `413 at upload`, `400 at submit`, `succeeded`, … */
  outcome: string;
  /** The problem's detail (or the build error's). */
  detail?: string;
  /** HTTP status of the refusal, or of the failed build's problem. */
  status?: number;
  /** From the attack's start to its refusal or its build's end; undefined: it did not end. */
  timeToEndMs?: number;
  /** The attack's build did not end in time (it was cancelled, or tried to be). */
  stuck?: boolean;
  build?: BuildView;
}

export interface AttackReport<T extends AttackResult> {
  attack: string;
  result: T;
  worker: WorkerMeasurements;
  charged?: number;
  /** The bystander's normal build: how it ended and how long it took. */
  after: { status: string; ms: number };
}

export interface AttackOptions {
  /** The tenant whose charged bytes are reported against the quota. */
  chargedTenant?: string;
  /** Worker restarts the attack is meant to cause (the poison build's two). */
  restartsAllowed?: number;
}

export async function runAttack<T extends AttackResult>(hostile: HostileService, attack: string, run: () => Promise<T>, opts: AttackOptions = {}): Promise<AttackReport<T>> {
  const watch = await WorkerWatch.start(hostile.service, hostile.metricsPort);
  let result: T;
  try {
    result = await run();
  } catch (err) {
    await watch.stop();
    throw err;
  }
  const after = await normalBuild(hostile.as(BYSTANDER), attack);
  const worker = await watch.stop();
  const charged = opts.chargedTenant ? await chargedBytes(hostile.service.redisUrl, opts.chargedTenant) : undefined;
  appendFaultRow({
    attack,
    outcome: `${result.outcome}${result.detail ? `: ${oneLine(result.detail, 90)}` : ''}`,
    timeToEndMs: result.timeToEndMs ?? null,
    peakRssBytes: worker.peakRssBytes,
    loopP99MaxMs: worker.countedScrapes > 0 ? Math.round(worker.loopP99MaxSeconds * 1000) : null,
    loopMaxMs: worker.countedScrapes > 0 ? Math.round(worker.loopMaxSeconds * 1000) : null,
    slowestScrapeMs: Math.round(worker.slowestScrapeSeconds * 1000),
    workerProcesses: worker.pids.length,
    chargedBytes: charged ?? null,
    quotaBytes: opts.chargedTenant ? hostile.quota : null,
    after: `${after.status} in ${(after.ms / 1000).toFixed(1)} s`,
  });
  // Whatever the attack left behind (a build still running, a worker still busy) must not
  // decide the next test's outcome.
  if (result.stuck || after.status !== 'succeeded') await hostile.replace();
  const report = { attack, result, worker, charged, after };
  // Soft: the attack's own expectations are checked (and reported) after these.
  expectWorkerUnharmed(report, { restartsAllowed: opts.restartsAllowed });
  return report;
}

/** The bystander's small build right after an attack; `timed out` if not done in 30 s. */
async function normalBuild(client: TenantClient, attack: string): Promise<{ status: string; ms: number }> {
  const started = Date.now();
  const res = await client.submit({ name: 'bystander/normal', contents: [{ text: `after ${attack} at ${started}\n`, to: '/after' }] });
  if (res.status !== 202 && res.status !== 201) return { status: `refused ${res.status}`, ms: Date.now() - started };
  const { id } = (await res.json()) as { id: string };
  const build = await client.finished(id, NORMAL_BUILD_MS);
  if (!build) await client.cancel(id);
  return { status: build?.status ?? 'timed out', ms: Date.now() - started };
}

/** One line of at most `max` characters, with control characters (a hostile registry's escapes) shown, not sent. */
function oneLine(text: string, max: number): string {
  const line = text
    .replace(/\s+/g, ' ')
    .replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)
    .trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

/**
 * How a submitted build ended, timed from `startedAt`. A build not ended in `timeoutMs` is
 * cancelled (which may not stop it: that is one of the attacks) and reported `stuck`.
 */
export async function buildOutcome(client: TenantClient, id: string, startedAt: number, timeoutMs: number): Promise<AttackResult> {
  const build = await client.finished(id, timeoutMs);
  if (!build) {
    await client.cancel(id);
    return { outcome: `still running after ${Math.round(timeoutMs / 1000)} s`, stuck: true };
  }
  const ended = Date.parse((build as { finishedAt?: string }).finishedAt ?? '') || Date.now();
  return {
    outcome: build.error ? `${build.status} ${build.error.status}` : build.status,
    status: build.error?.status,
    detail: build.error?.detail,
    timeToEndMs: ended - startedAt,
    build,
  };
}

/** Submits `spec` as `client` and reports how the build ended (or how the submission was refused). */
export async function submitAndWait(client: TenantClient, spec: unknown, timeoutMs: number, query = ''): Promise<AttackResult> {
  const startedAt = Date.now();
  const res = await client.submit(spec, query);
  if (res.status !== 202 && res.status !== 201) return refusal(res, 'submit', startedAt);
  const { id } = (await res.json()) as { id: string };
  return buildOutcome(client, id, startedAt, timeoutMs);
}

/** A request the service refused: `413 at upload`, with the problem's detail. */
export async function refusal(res: Response, where: string, startedAt: number): Promise<AttackResult> {
  const problem = await problemOf(res);
  return { outcome: `${problem.status} at ${where}`, status: problem.status, detail: problem.detail, timeToEndMs: Date.now() - startedAt };
}
