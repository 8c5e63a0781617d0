import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Cleanups } from './support/cleanup.ts';
import { killCannons } from './support/load.ts';

// bench/build.ts's run: its options (from argv), its progress lines and its cleanups.

const here = dirname(fileURLToPath(import.meta.url));
export const REPO = join(here, '..');
export const RESULTS_FILE = join(here, 'RESULTS.md');

export const { values: opts } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
    'cache-runs': { type: 'string', default: '10' },
    seed: { type: 'string', default: 'baler-bench-1' },
    'tree-mib': { type: 'string', default: '50' },
    'tree-files': { type: 'string', default: '1000' },
    'peer-input': { type: 'string', default: 'tar' },
    big: { type: 'boolean', default: false },
    'no-big': { type: 'boolean', default: false },
    'big-mib': { type: 'string', default: '2048' },
    'big-compression': { type: 'string', default: 'gzip' },
    'queue-builds': { type: 'string', default: '1000' },
    connections: { type: 'string', default: '50' },
    'cannon-seconds': { type: 'string', default: '10' },
    'quiet-wait': { type: 'string', default: '30' },
    'cpu-quiet-wait': { type: 'string', default: '10' },
    'cpu-quiet-cores': { type: 'string', default: '0.25' },
    'log-level': { type: 'string' },
    'save-log': { type: 'string' },
    'no-results-file': { type: 'boolean', default: false },
  },
  strict: true,
});

function positiveInt(name: string, raw: string | undefined, min = 1): number {
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < min) throw new Error(`--${name} must be an integer ≥ ${min}, got ${raw}`);
  return n;
}
export const RUNS = positiveInt('runs', opts.runs);
export const WARMUP = positiveInt('warmup', opts.warmup, 0);
export const CACHE_RUNS = positiveInt('cache-runs', opts['cache-runs']);
export const TREE_BYTES = positiveInt('tree-mib', opts['tree-mib']) * 1024 * 1024;
export const TREE_FILES = positiveInt('tree-files', opts['tree-files'], 2);
export const BIG = !opts['no-big']; // --big is the default; --no-big turns it off
export const BIG_BYTES = positiveInt('big-mib', opts['big-mib']) * 1024 * 1024;
export const BIG_COMPRESSION = opts['big-compression'] as string;
if (!['gzip', 'none'].includes(BIG_COMPRESSION)) throw new Error(`--big-compression must be gzip or none, got ${BIG_COMPRESSION}`);
export const PEER_INPUT = opts['peer-input'] as string;
if (PEER_INPUT !== 'tar' && PEER_INPUT !== 'dir') throw new Error(`--peer-input must be tar (buildah add of the tar) or dir (buildah copy of the tree), got ${PEER_INPUT}`);
export const QUEUE_BUILDS = positiveInt('queue-builds', opts['queue-builds']);
export const CONNECTIONS = positiveInt('connections', opts.connections);
export const CANNON_S = positiveInt('cannon-seconds', opts['cannon-seconds']);
export const QUIET_WAIT_S = Number(opts['quiet-wait']);
if (!(QUIET_WAIT_S >= 0)) throw new Error(`--quiet-wait must be a number of seconds, got ${opts['quiet-wait']}`);
export const CPU_WAIT_S = Number(opts['cpu-quiet-wait']);
if (!(CPU_WAIT_S >= 0)) throw new Error(`--cpu-quiet-wait must be a number of seconds, got ${opts['cpu-quiet-wait']}`);
export const CPU_QUIET_CORES = Number(opts['cpu-quiet-cores']);
if (!(CPU_QUIET_CORES >= 0)) throw new Error(`--cpu-quiet-cores must be a number, got ${opts['cpu-quiet-cores']}`);
export const SEED = opts.seed as string;
export const COMMAND = ['node --import tsx bench/build.ts', ...process.argv.slice(2)].join(' ');
export const NPM_COMMAND = process.argv.length > 2 ? `npm run bench -- ${process.argv.slice(2).join(' ')}` : 'npm run bench';

export const POLL_MS = 10;
export const CACHE_POLL_MS = 2;
export const MiB = 1024 * 1024;

export function progress(text: string): void {
  process.stderr.write(`bench: ${text}\n`);
}

// ---------------------------------------------------------------------------
// cleanup on every exit path

export const cleanups = new Cleanups(progress, killCannons);
export const withCleanup = <T>(cleanup: () => Promise<void>, body: () => Promise<T>): Promise<T> => cleanups.with(cleanup, body);
export const checkInterrupted = (): void => cleanups.checkInterrupted();

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
