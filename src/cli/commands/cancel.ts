/** `baler cancel ID [--json]`: a queued build never starts, a running one is stopped. */
import type { Command } from 'commander';
import type { BuildView } from '../build-events.ts';
import { action, clientOf, printJson } from '../command-context.ts';

export function registerCancel(program: Command): void {
  program
    .command('cancel')
    .description('cancel a queued or running build')
    .argument('<id>', 'build id')
    .option('--json', 'the build record as JSON')
    .action(
      action(async (id: string, opts: { json?: boolean }, command: Command) => {
        const build = await clientOf(command).json<BuildView>(`/v1/builds/${encodeURIComponent(id)}/cancel`, { method: 'POST' });
        if (opts.json) printJson(build);
        else process.stdout.write(`build ${build.id}: ${build.status}\n`);
      }),
    );
}
