/** `baler logs ID [--follow]`: the build's log; with --follow, as it is written, until the build ends. */
import type { Command } from 'commander';
import { followBuild } from '../build-events.ts';
import { action, clientOf } from '../command-context.ts';

export function registerLogs(program: Command): void {
  program
    .command('logs')
    .description("print a build's log (its scripts' output)")
    .argument('<id>', 'build id')
    .option('-f, --follow', 'keep printing until the build is finished')
    .option('--poll', 'follow by polling, not through the events stream')
    .action(
      action(async (id: string, opts: { follow?: boolean; poll?: boolean }, command: Command) => {
        const client = clientOf(command);
        if (!opts.follow) {
          const res = await client.request(`/v1/builds/${encodeURIComponent(id)}/logs`);
          process.stdout.write(await res.text());
          return;
        }
        await followBuild(client, id, { log: (text) => process.stdout.write(text) }, { poll: Boolean(opts.poll) });
      }),
    );
}
