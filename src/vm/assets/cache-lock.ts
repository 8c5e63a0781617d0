/**
 * An exclusive lock on a file of the asset cache, so that processes building the same assets
 * (workers starting together, a worker and a test, setup) take turns: one runs apt and builds,
 * the next finds the result. Held by a `flock` child (util-linux) whose stdin is our pipe: the
 * kernel drops the lock when that child exits, and it exits when we release or whenever this
 * process ends (the pipe closes), so a lock is never left behind by a process that died.
 */
import { spawn } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname } from 'node:path';

/** flock's exit status when it gave up waiting (its -E). */
const GAVE_UP = 75;
/** After this long without the lock, the wait is logged once, naming the holder. */
const QUIET_WAIT_MS = 1000;

export class CacheLockTimeoutError extends Error {
  constructor(
    readonly path: string,
    waitedMs: number,
    holder: string | undefined,
  ) {
    super(`gave up after ${Math.round(waitedMs / 1000)} s waiting for the lock ${path}${holder ? ` (held by ${holder})` : ''}; if no such build is running, retry`);
    this.name = 'CacheLockTimeoutError';
  }
}

export interface CacheLockOptions {
  /** The longest to wait for the lock. */
  waitMs: number;
  /** What the holder does, for whoever waits (e.g. `building the linux/arm64 VM assets`). */
  what: string;
  log?: (message: string) => void;
}

/** Runs `work` holding the lock `path` (made when missing); waits for it at most `waitMs`. */
export async function withCacheLock<T>(path: string, options: CacheLockOptions, work: () => Promise<T>): Promise<T> {
  const release = await acquireCacheLock(path, options);
  try {
    return await work();
  } finally {
    await release();
  }
}

/** Takes the lock; the returned function releases it (resolving once it is free). */
export async function acquireCacheLock(path: string, { waitMs, what, log }: CacheLockOptions): Promise<() => Promise<void>> {
  await mkdir(dirname(path), { recursive: true });
  const started = Date.now();
  const child = spawn('flock', ['-E', String(GAVE_UP), '-w', (waitMs / 1000).toFixed(3), path, '-c', 'echo locked && exec cat >/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-2000)));
  const quiet = setTimeout(() => {
    void holderOf(path).then((holder) => log?.(`waiting for ${path}${holder ? `: held by ${holder}` : ''}`));
  }, QUIET_WAIT_MS);
  const locked = await new Promise<boolean>((resolve, reject) => {
    child.once('error', reject);
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      if (d.includes('locked')) resolve(true);
    });
    void exited.then(() => resolve(false));
  }).finally(() => clearTimeout(quiet));
  if (!locked) {
    const code = await exited;
    if (code === GAVE_UP) throw new CacheLockTimeoutError(path, Date.now() - started, await holderOf(path));
    throw new Error(`flock ${path} failed (exit ${code}): ${stderr.trim()}`);
  }
  const release = async (): Promise<void> => {
    child.stdin.end();
    await exited;
  };
  // Ours now: say who holds it, for those who wait (flock ignores the file's contents).
  await writeFile(path, `pid ${process.pid} on ${hostname()}, ${what} since ${new Date().toISOString()}\n`).catch(async (err: unknown) => {
    await release();
    throw err;
  });
  return release;
}

/** What the lock file says of its holder (the last one's, when none holds it). */
async function holderOf(path: string): Promise<string | undefined> {
  try {
    return (await readFile(path, 'utf8')).trim() || undefined;
  } catch {
    return undefined;
  }
}
