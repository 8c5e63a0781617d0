/** `baler verify ID [--wait] [--json]`: rebuild a succeeded build with no cache and compare (rebuild to verify). */
import type { Command } from 'commander';
import { action, clientOf, printJson } from '../command-context.ts';

interface VerificationView {
  buildId: string;
  reproducible?: boolean;
  firstDifference?: { layer: number; path?: string; what: string };
  workers?: { different?: boolean };
  error?: string;
}

/** How often --wait looks at the build again (a verification is a whole build: seconds at least). */
const POLL_MS = 1000;

export function registerVerify(program: Command): void {
  program
    .command('verify')
    .description('rebuild a succeeded build with no cache and compare its digests; with --wait, say whether it is reproducible')
    .argument('<id>', 'build id')
    .option('--wait', 'wait for the verdict (exit code 1 if the build is not reproducible or the rebuild failed)')
    .option('--json', 'the verification as JSON')
    .action(
      action(async (id: string, opts: { wait?: boolean; json?: boolean }, command: Command) => {
        const client = clientOf(command);
        const path = `/v1/builds/${encodeURIComponent(id)}`;
        const accepted = await client.json<{ id: string; status: string }>(`${path}/verify`, { method: 'POST' });
        if (!opts.wait) {
          if (opts.json) printJson(accepted);
          else process.stdout.write(`verification build ${accepted.id}: ${accepted.status} (baler status ${id} shows the verdict once it has finished)\n`);
          return 0;
        }
        let verification: VerificationView | undefined;
        while (verification?.buildId !== accepted.id) {
          await new Promise((r) => setTimeout(r, POLL_MS));
          verification = (await client.json<{ verification?: VerificationView }>(path)).verification;
        }
        if (opts.json) printJson(verification);
        else process.stdout.write(`${describeVerification(id, verification)}\n`);
        return verification.reproducible === true ? 0 : 1;
      }),
    );
}

function describeVerification(id: string, v: VerificationView): string {
  if (v.reproducible === undefined) return `build ${id}: no verdict: ${v.error ?? 'unknown'}`;
  const where = v.workers?.different === undefined ? '' : v.workers.different ? ' (rebuilt on another worker)' : ' (rebuilt on the same worker)';
  if (v.reproducible) return `build ${id}: reproducible${where}`;
  const d = v.firstDifference;
  const first = d ? `; first difference in layer ${d.layer}${d.path ? ` at ${d.path}` : ''} (${d.what})` : '';
  return `build ${id}: NOT reproducible${first}${where}`;
}
