/** `baler status ID [--json]`: a build's state, timings, result or error. */
import type { Command } from 'commander';
import type { BuildView } from '../build-events.ts';
import { action, clientOf, printJson } from '../command-context.ts';
import { describeBuild } from '../output.ts';

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description("show a build's state, timings, and its result or error")
    .argument('<id>', 'build id')
    .option('--json', 'the build record as JSON')
    .action(
      action(async (id: string, opts: { json?: boolean }, command: Command) => {
        const build = await clientOf(command).json<BuildView>(`/v1/builds/${encodeURIComponent(id)}`);
        if (opts.json) printJson(build);
        else process.stdout.write(`${describeBuild(build)}\n`);
      }),
    );
}
