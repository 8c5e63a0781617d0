/** Every archive form an image can be downloaded in (`OutputFormat` in openapi.yaml). */
export type OutputFormat = 'docker-archive' | 'docker-archive-oci' | 'oci-archive' | 'rootfs';

/**
 * How an output is compressed (`Compression` in openapi.yaml): the whole tar (docker-archive,
 * rootfs) or each layer (docker-archive-oci, oci-archive).
 */
export type OutputCompression = 'none' | 'gzip' | 'zstd';

/** The compressions each format allows, its default first (docker-archive-oci.ts says why it has no zstd). */
const FORMAT_COMPRESSIONS: Record<OutputFormat, readonly OutputCompression[]> = {
  'docker-archive': ['gzip', 'none'],
  'docker-archive-oci': ['none', 'gzip'],
  'oci-archive': ['gzip', 'zstd', 'none'],
  rootfs: ['none', 'gzip'],
};

/** What `format` is compressed with when nothing is asked. */
export function defaultCompression(format: OutputFormat): OutputCompression {
  return FORMAT_COMPRESSIONS[format][0] as OutputCompression;
}

/** Why `format` cannot be written with `compression` (`'zstd' is not available for …`), or undefined when it can. */
export function compressionRefusal(format: OutputFormat, compression: string): string | undefined {
  const allowed = FORMAT_COMPRESSIONS[format];
  return (allowed as readonly string[]).includes(compression) ? undefined : `'${compression}' is not available for ${format} (one of: ${allowed.join(', ')})`;
}
