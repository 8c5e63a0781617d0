import type { Digest } from '../digest.ts';
import type { EntryType } from './tar-entry.ts';

/** Where an entry's bytes come from: a range of a stored blob, or bytes held inline (small text). */
export type EntryData = { blob: Digest; offset: number } | { inline: Buffer };

/** One file of a layer, resolved and normalised, ready to be written. */
export interface LayerEntry {
  /** Relative path without leading `./`, `/` or trailing `/`; never empty, never with `..`. */
  path: string;
  type: EntryType;
  mode: number;
  uid: number;
  gid: number;
  /** Data size; 0 for anything but regular files. */
  size: number;
  /** Symlink target (verbatim) or, for hard links, the normalised path of the target. */
  linkname: string;
  devmajor: number;
  devminor: number;
  xattrs: Record<string, string>;
  /** Seconds since the epoch; only used where a layer keeps its entries' own times. */
  mtime?: number;
  data?: EntryData;
}

export class LayerInputError extends Error {
  constructor(message: string, opts?: { cause?: unknown }) {
    super(message, opts);
    this.name = 'LayerInputError';
  }
}

/**
 * Normalise a path from a spec or an archive to the layer's relative form. Leading `/` and
 * `.` components are dropped; `..` is refused rather than resolved, so no entry can name
 * anything outside the layer root.
 */
export function normalizeLayerPath(raw: string, what: string): string {
  const parts: string[] = [];
  for (const part of raw.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') throw new LayerInputError(`${what} '${raw}' contains '..'`);
    if (part.includes('\0')) throw new LayerInputError(`${what} contains a NUL byte`);
    parts.push(part);
  }
  return parts.join('/');
}

export function joinLayerPath(base: string, rel: string): string {
  if (!base) return rel;
  if (!rel) return base;
  return `${base}/${rel}`;
}
