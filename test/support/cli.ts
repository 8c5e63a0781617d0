/** Run the `baler` CLI (bin/baler.js, as installed) as a child process, with pipes or in a real pseudo-terminal. */
import { fileURLToPath } from 'node:url';
import { run, type RunResult } from './run.ts';

export const BALER_BIN = fileURLToPath(new URL('../../bin/baler.js', import.meta.url));

/** `baler ...args` with stdout and stderr as pipes (not terminals). */
export function baler(url: string, args: string[], opts: { cwd?: string; env?: Record<string, string | undefined> } = {}): Promise<RunResult> {
  return run(BALER_BIN, args, { env: { BALER_URL: url, BALER_TOKEN: undefined, ...opts.env }, cwd: opts.cwd, timeoutMs: 240_000 });
}

const shellQuote = (arg: string) => `'${arg.replace(/'/g, `'\\''`)}'`;

/**
 * `baler ...args` in a pseudo-terminal made by util-linux `script` (stdin, stdout and stderr
 * are the terminal); `stdout` is everything the terminal showed, control sequences included.
 */
export function balerInPty(url: string, args: string[], opts: { cwd?: string } = {}): Promise<RunResult> {
  const command = `stty cols 120 rows 40; exec ${[BALER_BIN, ...args].map(shellQuote).join(' ')}`;
  return run('script', ['--quiet', '--flush', '--return', '--command', command, '/dev/null'], {
    env: { BALER_URL: url, BALER_TOKEN: undefined, TERM: 'xterm-256color' },
    cwd: opts.cwd,
    timeoutMs: 240_000,
  });
}
