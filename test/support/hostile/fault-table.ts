/**
 * Rows of the table `npm run test:faults` prints (scripts/test-faults.mjs): one JSON line per
 * attack, appended to the file BALER_FAULTS_TABLE names. Unset (as under `npm test`): no rows.
 */
import { appendFileSync } from 'node:fs';

export interface FaultRow {
  attack: string;
  /** What the attacker got: `failed 422 …`, `413 at upload`, `400 at submit`, `succeeded`, … */
  outcome: string;
  /** From the attack's start to its refusal or its build's end; null when it did not end. */
  timeToEndMs: number | null;
  peakRssBytes: number;
  /** Null when no scrape window counted (the attack was over before one). */
  loopP99MaxMs: number | null;
  loopMaxMs: number | null;
  /** Longest wait for the worker's /metrics answer (a blocked event loop answers late). */
  slowestScrapeMs: number;
  /** Worker processes seen during the attack (1: it never restarted). */
  workerProcesses: number;
  chargedBytes: number | null;
  quotaBytes: number | null;
  /** The bystander's normal build right after: its status and how long it took. */
  after: string;
}

export const FAULT_TABLE_ENV = 'BALER_FAULTS_TABLE';

export function appendFaultRow(row: FaultRow): void {
  const path = process.env[FAULT_TABLE_ENV];
  if (path) appendFileSync(path, `${JSON.stringify(row)}\n`);
}
