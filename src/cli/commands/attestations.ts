/** `baler sbom ID` and `baler provenance ID`: a build's attestations, as the API serves them. */
import type { Command } from 'commander';
import { action, clientOf } from '../command-context.ts';

interface AttestationOptions {
  platform?: string;
  envelope?: boolean;
}

/** The document (or its DSSE envelope with --envelope) of `path`, to stdout byte for byte: what the signature covers. */
async function printAttestation(command: Command, path: string, query: Record<string, string | undefined>): Promise<void> {
  const params = new URLSearchParams(Object.entries(query).filter((e): e is [string, string] => e[1] !== undefined));
  const res = await clientOf(command).request(`${path}${params.size > 0 ? `?${params}` : ''}`);
  process.stdout.write(Buffer.from(await res.arrayBuffer()));
}

export function registerAttestations(program: Command): void {
  program
    .command('sbom')
    .description("print a build's SBOM (what is in its image)")
    .argument('<id>', 'build id')
    .option('--format <format>', 'spdx (SPDX 2.3 JSON) or cyclonedx (CycloneDX 1.6 JSON)', 'spdx')
    .option('--platform <os/arch>', "one platform's image of a multi-platform build")
    .option('--envelope', 'the signed DSSE envelope instead of the document')
    .action(
      action(async (id: string, opts: AttestationOptions & { format: string }, command: Command) => {
        await printAttestation(command, `/v1/builds/${encodeURIComponent(id)}/sbom`, { format: opts.format, platform: opts.platform, envelope: opts.envelope ? '1' : undefined });
      }),
    );
  program
    .command('provenance')
    .description("print a build's provenance (how its image was made: an in-toto statement, SLSA v1)")
    .argument('<id>', 'build id')
    .option('--platform <os/arch>', "one platform's image of a multi-platform build")
    .option('--envelope', 'the signed DSSE envelope instead of the statement')
    .action(
      action(async (id: string, opts: AttestationOptions, command: Command) => {
        await printAttestation(command, `/v1/builds/${encodeURIComponent(id)}/provenance`, { platform: opts.platform, envelope: opts.envelope ? '1' : undefined });
      }),
    );
}
