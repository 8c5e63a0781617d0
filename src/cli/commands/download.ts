/** `baler download ID [-o FILE] [--format F] [--compression C]`: a succeeded build's image. */
import { Option, type Command } from 'commander';
import { action, clientOf } from '../command-context.ts';
import { downloadImage } from '../image-download.ts';
import { createReporter } from '../reporter.ts';

// Values are not checked here: the server knows which formats and compressions it has, and says so (400).
export function formatOption(): Option {
  return new Option('--format <format>', "image format to download: docker-archive, docker-archive-oci, oci-archive, rootfs (default: the spec's)");
}

export function compressionOption(): Option {
  return new Option('--compression <compression>', "compression of the download: gzip, none, zstd (default: the format's)");
}

export function registerDownload(program: Command): void {
  program
    .command('download')
    .description('download the image of a succeeded build')
    .argument('<id>', 'build id')
    .option('-o, --output <file>', "where to write it ('-': stdout; default: the server's file name)")
    .addOption(formatOption())
    .addOption(compressionOption())
    .option('--plain', 'plain lines, no progress bars, even on a terminal')
    .action(
      action(async (id: string, opts: { output?: string; format?: string; compression?: string; plain?: boolean }, command: Command) => {
        const reporter = createReporter(process.stderr, Boolean(opts.plain));
        try {
          await downloadImage(clientOf(command), id, opts, reporter);
        } finally {
          reporter.close();
        }
      }),
    );
}
