/**
 * What a test service was doing when it was stopped with builds unfinished (a hang), from
 * what test/support/service.ts leaves in BALER_TEST_LOG_DIR: each service's log
 * (`service-<port>.log`) and the Node reports its processes wrote when stopped so (SIGUSR2).
 * `.ci/run` prints it after a failed run, so that a hang in CI can be diagnosed from CI's
 * output alone: `node --import tsx test/support/hang-report.ts DIR`.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface LogLine {
  level: number;
  time: number;
  pid?: number;
  name?: string;
  msg?: string;
  buildId?: string;
  [field: string]: unknown;
}

/** A line saying a build attempt ended, one way or another. */
export const ATTEMPT_ENDED = /^build (succeeded|failed|cancelled|timed out|stopped|finished but|is not runnable|attempt failed)/;

export function parseLog(text: string): LogLine[] {
  const lines: LogLine[] = [];
  for (const raw of text.split('\n')) {
    if (!raw.startsWith('{')) continue;
    try {
      const line = JSON.parse(raw) as LogLine;
      if (typeof line.time === 'number') lines.push(line);
    } catch {
      /* not a log line */
    }
  }
  return lines;
}

/** Builds whose last attempt started and did not end, with when it started. */
export function unfinishedBuilds(lines: LogLine[]): Map<string, number> {
  const started = new Map<string, number>();
  for (const line of lines) {
    if (typeof line.buildId !== 'string') continue;
    if (line.msg === 'build started') started.set(line.buildId, line.time);
    else if (ATTEMPT_ENDED.test(line.msg ?? '')) started.delete(line.buildId);
  }
  return started;
}

const LEVELS: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };
const PLAIN = new Set(['level', 'time', 'pid', 'hostname', 'buildId', 'jobId', 'msg', 'reqId', 'name']);

function compact(line: LogLine, t0: number): string {
  const extra = Object.entries(line)
    .filter(([k]) => !PLAIN.has(k))
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  return `  +${((line.time - t0) / 1000).toFixed(1)}s ${LEVELS[line.level] ?? line.level} ${line.name}[${line.pid}]: ${line.msg} ${extra}`.slice(0, 300);
}

interface NodeReport {
  header: { processId: number; event: string };
  javascriptStack?: { message?: string; stack?: string[] };
  libuv?: Array<{ type: string; is_active?: boolean }>;
}

function reports(dir: string): Map<number, NodeReport> {
  const byPid = new Map<number, NodeReport>();
  for (const name of readdirSync(dir).filter((n) => /^report\..*\.json$/.test(n))) {
    try {
      const report = JSON.parse(readFileSync(join(dir, name), 'utf8')) as NodeReport;
      byPid.set(report.header.processId, report);
    } catch {
      /* half written */
    }
  }
  return byPid;
}

function describeReport(pid: number, report: NodeReport | undefined): string {
  if (!report) return `  process ${pid}: no report (its event loop was blocked, or it had exited)`;
  const handles = new Map<string, number>();
  for (const h of report.libuv ?? []) if (h.is_active) handles.set(h.type, (handles.get(h.type) ?? 0) + 1);
  const stack = (report.javascriptStack?.stack ?? []).slice(0, 6).map((f) => `      ${f.trim()}`);
  return [`  process ${pid}: report: ${report.javascriptStack?.message ?? ''}; active handles ${[...handles].map(([t, n]) => `${t}×${n}`).join(' ')}`, ...stack].join('\n');
}

/** The report, as lines: per unfinished build, its last `perBuild` log lines, warnings since, and its processes' reports. */
export function hangReport(dir: string, perBuild = 12): string[] {
  const out: string[] = [];
  const byPid = reports(dir);
  for (const file of readdirSync(dir)
    .filter((f) => f.endsWith('.log'))
    .sort()) {
    const lines = parseLog(readFileSync(join(dir, file), 'utf8'));
    const last = lines.at(-1)?.time ?? 0;
    for (const [buildId, t0] of unfinishedBuilds(lines)) {
      out.push(`${file}: build ${buildId} started and did not end (the log goes on ${((last - t0) / 1000).toFixed(1)} s after its start):`);
      const own = lines.filter((l) => l.buildId === buildId);
      out.push(...own.slice(-perBuild).map((l) => compact(l, t0)));
      const trouble = lines.filter((l) => l.level >= 40 && l.time >= t0).slice(-5);
      if (trouble.length > 0) out.push('  warnings since it started:', ...trouble.map((l) => compact(l, t0)));
      const pids = new Set(lines.map((l) => l.pid).filter((p): p is number => p !== undefined));
      for (const pid of pids) out.push(describeReport(pid, byPid.get(pid)));
    }
  }
  return out;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const [dir, perBuild] = process.argv.slice(2);
  if (!dir) {
    console.error('usage: node --import tsx test/support/hang-report.ts DIR [LINES_PER_BUILD]');
    process.exit(2);
  }
  for (const line of hangReport(dir, perBuild ? Number(perBuild) : undefined)) console.log(line);
}
