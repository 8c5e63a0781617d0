#!/usr/bin/env node
// `npm run test:faults`: the fault, fuzz, hostile and many-hosts tests at full strength, then one table of
// the hostile attacks (attack → outcome, time to fail, peak worker RSS, event-loop delay,
// bytes charged vs quota), printed even when tests failed. Each hostile test appends its row
// to the file BALER_FAULTS_TABLE names (test/support/hostile/fault-table.ts).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dir = mkdtempSync(join(tmpdir(), 'baler-faults-'));
const rows = join(dir, 'rows.jsonl');

const vitest = spawnSync(join(root, 'node_modules/.bin/vitest'), ['run', 'test/faults', 'test/fuzz', 'test/cluster', ...process.argv.slice(2)], {
  cwd: root,
  stdio: 'inherit',
  env: {
    ...process.env,
    FAULT_TRIALS: process.env.FAULT_TRIALS ?? '20',
    FUZZ_SPECS: process.env.FUZZ_SPECS ?? '10000',
    FUZZ_TARS: process.env.FUZZ_TARS ?? '1000',
    BALER_FAULTS_TABLE: rows,
    // The hostile stress files `npm test` leaves out (vitest.config.ts).
    BALER_FAULTS_FULL: '1',
  },
});

const size = (bytes) => (bytes < 1024 * 1024 ? `${Math.round(bytes / 1024)} KiB` : `${Math.round(bytes / 1024 / 1024)} MiB`);
const ms = (value) => (value === null ? '—' : value < 10_000 ? `${value} ms` : `${(value / 1000).toFixed(1)} s`);
const table = existsSync(rows)
  ? readFileSync(rows, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line))
      .map((r) => [
        r.attack,
        r.outcome,
        ms(r.timeToEndMs),
        size(r.peakRssBytes),
        `${r.loopP99MaxMs === null ? '—' : `${r.loopP99MaxMs} / ${r.loopMaxMs} ms`}${r.slowestScrapeMs > Math.max(1000, r.loopMaxMs ?? 0) ? ` (a scrape waited ${ms(r.slowestScrapeMs)})` : ''}`,
        r.quotaBytes === null ? '—' : `${size(r.chargedBytes)} / ${size(r.quotaBytes)}`,
        String(r.workerProcesses - 1),
        r.after,
      ])
  : [];
const header = ['attack', 'outcome', 'time to fail', 'peak worker RSS', 'event-loop delay p99 / max', 'charged / quota', 'worker restarts', 'normal build after'];
const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i].length)));
const line = (cells) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
console.log(`\nHostile attacks (${table.length}):\n`);
console.log(line(header));
console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
for (const row of table) console.log(line(row));
rmSync(dir, { recursive: true, force: true });
process.exit(vitest.status ?? 1);
