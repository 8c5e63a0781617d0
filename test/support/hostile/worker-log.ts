/**
 * What the worker's log says about one build's attempts: when each started (and in which
 * process), and when the last one let go of the build, however it ended. The build record
 * cannot say the latter: a cancel marks it `cancelled` at once, while the worker may go on.
 */
import { ATTEMPT_ENDED, parseLog } from '../hang-report.ts';
import type { Service } from '../service.ts';

export interface AttemptStart {
  time: number;
  pid: number;
}

export function attemptStarts(service: Service, buildId: string): AttemptStart[] {
  return parseLog(service.output())
    .filter((l) => l.name === WORKER && l.buildId === buildId && l.msg === 'build started')
    .map((l) => ({ time: l.time, pid: l.pid as number }));
}

/** The worker's name in its log lines (the API logs `baler`, and says `build cancelled` too). */
const WORKER = 'baler-worker';

/** When the worker last said an attempt of the build ended; undefined while none did. */
export function attemptEndedAt(service: Service, buildId: string): number | undefined {
  return parseLog(service.output())
    .filter((l) => l.name === WORKER && l.buildId === buildId && ATTEMPT_ENDED.test(l.msg ?? ''))
    .at(-1)?.time;
}

/** The worker's log lines about the build (for messages). */
export function buildLogLines(service: Service, buildId: string): string[] {
  return parseLog(service.output())
    .filter((l) => l.buildId === buildId)
    .map((l) => `${l.name}[${l.pid}] ${l.msg}`);
}
