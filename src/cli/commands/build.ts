/**
 * `baler build SPEC [--context DIR] [-o FILE] [--wait]`: upload the local files the spec names,
 * submit it, and (with --wait or -o) follow the build to its end and download the image.
 */
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Command } from 'commander';
import { FINAL_STATUSES, followBuild, type BuildView } from '../build-events.ts';
import { action, clientOf, printJson } from '../command-context.ts';
import { downloadImage } from '../image-download.ts';
import { describeProblem } from '../output.ts';
import { createReporter, formatSeconds } from '../reporter.ts';
import { uploadSpecInputs } from '../spec-inputs.ts';
import { compressionOption, formatOption } from './download.ts';

interface BuildOptions {
  context?: string;
  output?: string;
  wait?: boolean;
  format?: string;
  compression?: string;
  cache: boolean;
  plain?: boolean;
  poll?: boolean;
  json?: boolean;
}

export function registerBuild(program: Command): void {
  program
    .command('build')
    .description('upload what a spec names, build it, and (with --wait or -o) follow it and download the image')
    .argument('<spec>', 'the BuildSpec, a JSON file')
    .option('-C, --context <dir>', "where paths in the spec are relative to (default: the spec file's directory)")
    .option('-o, --output <file>', "download the image here when it is built ('-': stdout); implies --wait")
    .option('-w, --wait', 'follow the build to its end; exit code 1 if it fails')
    .addOption(formatOption())
    .addOption(compressionOption())
    .option('--no-cache', 'build even if the same spec was built before')
    .option('--plain', 'plain lines, no progress bars, even on a terminal')
    .option('--poll', 'follow the build by polling, not through the events stream')
    .option('--json', 'print the final build record as JSON on stdout')
    .addHelpText(
      'after',
      `
Where the API wants a blob digest (contents[].tar, contents[].file, fromImage.blob), the spec
may name a local path instead, relative to --context: a file, or for "tar" a directory (packed
into a tar). They are uploaded first (skipped when the server has them) and replaced by their
digests. Example: {"contents": [{"tar": "./rootfs"}, {"file": "app.sh", "to": "/app.sh", "mode": "0755"}]}

The build id goes to stdout (unless stdout is a terminal); progress and the build log to stderr.`,
    )
    .action(action(async (specFile: string, opts: BuildOptions, command: Command) => build(specFile, opts, command)));
}

async function build(specFile: string, opts: BuildOptions, command: Command): Promise<number> {
  const client = clientOf(command);
  const spec = await readSpec(specFile);
  const reporter = createReporter(process.stderr, Boolean(opts.plain));
  try {
    await uploadSpecInputs(client, spec, opts.context ?? dirname(specFile), reporter);
    const submitted = await client.postJson<{ id: string; status: string; cached?: boolean; cachedFrom?: string }>(`/v1/builds${opts.cache ? '' : '?noCache=true'}`, spec);
    const { id } = submitted;
    reporter.line(`build ${id}: ${submitted.status}${submitted.cached ? ` (cached, identical to build ${submitted.cachedFrom})` : ''}`);
    if (!process.stdout.isTTY && !opts.json) process.stdout.write(`${id}\n`);
    if (!opts.wait && opts.output === undefined) {
      if (opts.json) printJson(submitted);
      return 0;
    }

    const started = Date.now();
    const final: BuildView = await followBuild(
      client,
      id,
      {
        // The final state gets its own summary below.
        state: (status) => status !== submitted.status && !FINAL_STATUSES.has(status) && reporter.line(`build ${id}: ${status}`),
        step: (event) => reporter.step(event),
        log: (text) => reporter.log(text),
        progress: (event) => reporter.progress(event),
      },
      { poll: Boolean(opts.poll) },
    );
    if (final.status !== 'succeeded') {
      reporter.close();
      if (opts.json) printJson(final);
      process.stderr.write(`build ${id}: ${final.status}\n`);
      if (final.error) process.stderr.write(`${describeProblem(final.error)}\n`);
      return 1;
    }
    reporter.line(`build ${id}: succeeded in ${formatSeconds(Date.now() - started)}, image ${final.result?.imageId ?? ''}`);
    if (opts.output !== undefined) {
      const to = await downloadImage(client, id, { output: opts.output, format: opts.format, compression: opts.compression }, reporter);
      if (to !== '-') reporter.line(`image written to ${to}`);
    }
    reporter.close();
    if (opts.json) printJson(final);
    return 0;
  } finally {
    reporter.close();
  }
}

async function readSpec(file: string): Promise<Record<string, unknown>> {
  const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new Error(`cannot read spec ${file}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`);
  });
  let spec: unknown;
  try {
    spec = JSON.parse(text);
  } catch (err) {
    throw new Error(`spec ${file} is not JSON: ${(err as Error).message}`);
  }
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) throw new Error(`spec ${file} is not a JSON object`);
  return spec as Record<string, unknown>;
}
