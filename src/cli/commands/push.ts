/** `baler push ID REF [--wait] [--json]`: push a succeeded build's image to a registry the operator allows. */
import type { Command } from 'commander';
import type { BuildView } from '../build-events.ts';
import { action, clientOf, printJson } from '../command-context.ts';

export function registerPush(program: Command): void {
  program
    .command('push')
    .description("push a succeeded build's image to a registry (one the server's operator allows)")
    .argument('<id>', 'build id')
    .argument('<ref>', 'where to, host:port/repo:tag')
    .option('--wait', 'wait until the push succeeded or failed (exit code 1 if it failed)')
    .option('--json', 'the push as JSON')
    .action(
      action(async (id: string, ref: string, opts: { wait?: boolean; json?: boolean }, command: Command) => {
        const client = clientOf(command);
        const path = `/v1/builds/${encodeURIComponent(id)}`;
        let push: { status: string; manifestDigest?: string; error?: string } = await client.postJson(`${path}/push`, { ref });
        while (opts.wait && (push.status === 'queued' || push.status === 'running')) {
          await new Promise((r) => setTimeout(r, 500));
          const build = await client.json<BuildView>(path);
          push = build.pushes?.[ref] ?? push;
        }
        if (opts.json) printJson({ ref, ...push });
        else process.stdout.write(`push ${ref}: ${push.status}${push.manifestDigest ? ` ${push.manifestDigest}` : ''}${push.error ? `: ${push.error}` : ''}\n`);
        return push.status === 'failed' ? 1 : 0;
      }),
    );
}
