/**
 * What issue 12 asks of every hostile test, whatever the attack: the worker process never
 * restarts, its event-loop delay p99 stays under 200 ms, its RSS under 512 MiB, and a normal
 * build submitted right after succeeds within 30 s.
 */
import { expect } from 'vitest';
import type { AttackReport, AttackResult } from './attack.ts';

export const MAX_LOOP_P99_SECONDS = 0.2;
/** How long the bystander's normal build may take. */
export const NORMAL_BUILD_MS = 30_000;
export const MAX_WORKER_RSS_BYTES = 512 * 1024 * 1024;

export function expectWorkerUnharmed(report: AttackReport<AttackResult>, opts: { restartsAllowed?: number } = {}): void {
  const { worker, after, attack } = report;
  const mib = (bytes: number) => `${Math.round(bytes / 1024 / 1024)} MiB`;
  expect.soft(worker.pids.length - 1, `${attack}: worker restarts (pids ${worker.pids.join(', ')})`).toBeLessThanOrEqual(opts.restartsAllowed ?? 0);
  expect.soft(worker.loopP99MaxSeconds, `${attack}: worker event-loop delay p99 (s)`).toBeLessThan(MAX_LOOP_P99_SECONDS);
  expect.soft(worker.peakRssBytes, `${attack}: worker peak RSS ${mib(worker.peakRssBytes)}`).toBeLessThan(MAX_WORKER_RSS_BYTES);
  expect.soft(after.status, `${attack}: the bystander's normal build after it`).toBe('succeeded');
  expect.soft(after.ms, `${attack}: the normal build's time (ms)`).toBeLessThanOrEqual(NORMAL_BUILD_MS);
}
