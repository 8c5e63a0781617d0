/** What every command shares: the client from `--url`/`--token` (or the environment), and error reporting. */
import type { Command } from 'commander';
import { ApiProblem, BalerClient } from './client.ts';
import { describeProblem } from './output.ts';

export const DEFAULT_URL = 'http://127.0.0.1:8080';

export function clientOf(command: Command): BalerClient {
  const { url, token } = command.optsWithGlobals<{ url?: string; token?: string }>();
  return new BalerClient({ url: url ?? process.env.BALER_URL ?? DEFAULT_URL, token: token ?? process.env.BALER_TOKEN });
}

/**
 * A command's action: it returns its exit code; a problem from the server is printed as such,
 * any other error as one line, both with exit code 1.
 */
export function action<A extends unknown[]>(run: (...args: A) => Promise<number | void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      process.exitCode = (await run(...args)) ?? 0;
    } catch (err) {
      process.stderr.write(`${err instanceof ApiProblem ? describeProblem(err.problem) : `error: ${(err as Error).message}`}\n`);
      process.exitCode = 1;
    }
  };
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
