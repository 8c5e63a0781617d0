import { printable } from './printable.ts';
import type { StoredData } from './stored-data.ts';
import { encodedNameLength, isCanonicalName } from './tar-name.ts';
import type { EntryType } from './tar-entry.ts';

/** Where an entry's bytes come from: a stored blob (maybe a sparse file's segments), or bytes held inline (small text). */
export type EntryData = StoredData | { inline: Buffer };

/** One file of a layer, resolved and normalised, ready to be written. */
export interface LayerEntry {
  /**
   * Relative path without leading `./`, `/` or trailing `/`; never empty, never with `..`. Its
   * bytes as tar-name.ts keeps them, as is `linkname`.
   */
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

/** Longest name of one path component, in bytes: Linux's NAME_MAX. */
export const MAX_NAME_BYTES = 255;

/**
 * Normalise a path from a spec or an archive to the layer's relative form. Leading `/` and
 * `.` components are dropped; `..` is refused rather than resolved, so no entry can name
 * anything outside the layer root. A name longer than any Linux file system holds is refused
 * too (it could not be unpacked, and it bounds what one node of a layer's tree keeps).
 */
export function normalizeLayerPath(raw: string, what: string): string {
  requireByteName(raw, what);
  const parts: string[] = [];
  for (const part of raw.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') throw new LayerInputError(`${what} '${printable(raw)}' contains '..'`);
    if (part.includes('\0')) throw new LayerInputError(`${what} contains a NUL byte`);
    if (encodedNameLength(part) > MAX_NAME_BYTES) {
      throw new LayerInputError(`${what} '${printable(raw)}' has a name longer than ${MAX_NAME_BYTES} bytes`);
    }
    parts.push(part);
  }
  return parts.join('/');
}

/**
 * Refuses a name (a path, a link target) from a spec that is not the one spelling of some bytes
 * (tar-name.ts): a lone surrogate other than U+DC80..U+DCFF, or escaped bytes that form UTF-8
 * (write `é`, not `\udcc3\udca9`). A byte that is not UTF-8 is written as its escape, `\udce9`
 * for 0xE9, as Python's `os.fsdecode` gives it. Names read from tars always pass.
 */
export function requireByteName(name: string, what: string): void {
  if (!isCanonicalName(name)) {
    throw new LayerInputError(`${what} '${printable(name)}' is not a name: a byte that is not UTF-8 is written as U+DC80..U+DCFF (\\udce9 for 0xE9), and bytes that are UTF-8 as their character`);
  }
}

export function joinLayerPath(base: string, rel: string): string {
  if (!base) return rel;
  if (!rel) return base;
  return `${base}/${rel}`;
}
