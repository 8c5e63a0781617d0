/**
 * Every failure of an archive import that the archive (or the caller's choice of image in it)
 * causes: not an archive, an ambiguous or missing image, a layer that does not match its
 * diff_id, too many layers, hostile paths or sizes. The message is meant for the user as is.
 */
export class ArchiveImportError extends Error {
  constructor(message: string, opts?: { cause?: unknown }) {
    super(message, opts);
    this.name = 'ArchiveImportError';
  }
}

/** A decompressor rejected its input (corrupt or truncated data). */
export class DecompressionError extends Error {
  constructor(message: string, opts?: { cause?: unknown }) {
    super(message, opts);
    this.name = 'DecompressionError';
  }
}
