/** `baler`: the command line client of a baler service. */
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { DEFAULT_URL } from './command-context.ts';
import { registerAttestations } from './commands/attestations.ts';
import { registerBuild } from './commands/build.ts';
import { registerCancel } from './commands/cancel.ts';
import { registerDownload } from './commands/download.ts';
import { registerLogs } from './commands/logs.ts';
import { registerPush } from './commands/push.ts';
import { registerStatus } from './commands/status.ts';
import { registerVerify } from './commands/verify.ts';

const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

const program = new Command('baler')
  .description('Build Docker images with a baler service')
  .version(version)
  .option('--url <url>', `the service (env BALER_URL, default ${DEFAULT_URL})`)
  .option('--token <token>', 'bearer token (env BALER_TOKEN)')
  .showHelpAfterError();

registerBuild(program);
registerStatus(program);
registerLogs(program);
registerCancel(program);
registerDownload(program);
registerPush(program);
registerAttestations(program);
registerVerify(program);

await program.parseAsync();
