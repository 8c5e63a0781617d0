import { createHash } from 'node:crypto';
import type { Digest } from '../digest.ts';
import type { BlobStore } from '../store/blob-store.ts';
import { BlobRangeReader } from './blob-range-reader.ts';
import { printable } from './printable.ts';
import { readStoredData, storedDataOf } from './stored-data.ts';
import { indexTar, type IndexedTarEntry } from './tar-index.ts';
import type { TarIndexLimits } from './tar-limits.ts';
import { compareNames } from './tar-name.ts';

/**
 * How two tars first differ at one path: `missing` (the first tar has it, the second not),
 * `added` (the second only), a header field, or its data (`content`). `encoding`: every entry
 * is the same, the bytes are not (header encoding, padding, the end); no path then.
 */
export type TarDifferenceKind = 'missing' | 'added' | 'type' | 'mode' | 'owner' | 'mtime' | 'link' | 'device' | 'xattrs' | 'content' | 'encoding';

export interface TarDifference {
  /** The entry's path as an absolute path in the image (`/out/random`), shown printable. */
  path?: string;
  what: TarDifferenceKind;
}

/** Longest path a difference names (the tar budgets allow 4096 bytes; printable may escape some). */
const MAX_PATH_CHARS = 4200;

/**
 * The first entry at which two stored, uncompressed tars differ, reading both in order side by
 * side, entry by entry: headers compared field by field, then each file's data by its sha256,
 * never unpacked or held. Both are expected in the same entry order (a build's layers are
 * written in path order), so at two different names the one that sorts first is the one the
 * other lacks. null: no entry differs, nor do the bytes (the same blob). Bounded by `limits`
 * (each tar's entries and extension headers, as a build reads a layer) and by the tars' sizes.
 */
export async function firstTarDifference(store: BlobStore, original: Digest, rebuilt: Digest, limits: Partial<TarIndexLimits> = {}, signal?: AbortSignal): Promise<TarDifference | null> {
  if (original === rebuilt) return null;
  const left = indexTar(await store.open(original), limits);
  const right = indexTar(await store.open(rebuilt), limits);
  // A reader of each blob's data beside its index's read: each sequential, one open each.
  const leftData = new BlobRangeReader(store);
  const rightData = new BlobRangeReader(store);
  try {
    for (;;) {
      signal?.throwIfAborted();
      const [a, b] = await Promise.all([left.next(), right.next()]);
      if (a.done && b.done) return { what: 'encoding' };
      if (a.done) return at(b.value as IndexedTarEntry, 'added');
      if (b.done) return at(a.value, 'missing');
      const order = compareNames(pathOf(a.value.name), pathOf(b.value.name));
      if (order < 0) return at(a.value, 'missing');
      if (order > 0) return at(b.value, 'added');
      const header = headerDifference(a.value, b.value);
      if (header) return at(a.value, header);
      if (a.value.type === 'file' && a.value.size > 0) {
        const [hashA, hashB] = [await dataHash(leftData, original, a.value), await dataHash(rightData, rebuilt, b.value)];
        if (hashA !== hashB) return at(a.value, 'content');
      }
    }
  } finally {
    leftData.close();
    rightData.close();
    await Promise.all([left.return(undefined), right.return(undefined)]);
  }
}

/** The first header field that differs (size counts as content), or null. */
function headerDifference(a: IndexedTarEntry, b: IndexedTarEntry): TarDifferenceKind | null {
  if (a.type !== b.type) return 'type';
  if (a.size !== b.size) return 'content';
  if (a.mode !== b.mode) return 'mode';
  if (a.uid !== b.uid || a.gid !== b.gid) return 'owner';
  if (a.mtime !== b.mtime) return 'mtime';
  if (a.linkname !== b.linkname) return 'link';
  if (a.devmajor !== b.devmajor || a.devminor !== b.devminor) return 'device';
  if (!sameXattrs(a.xattrs, b.xattrs)) return 'xattrs';
  return null;
}

function sameXattrs(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && a[k] === b[k]);
}

async function dataHash(reader: BlobRangeReader, blob: Digest, entry: IndexedTarEntry): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of readStoredData(reader, storedDataOf(blob, entry), entry.size)) hash.update(chunk);
  return hash.digest('hex');
}

/** A tar name as a path in the image: `./out/random`, `out/random` and `out/random/` are `/out/random`. */
function pathOf(name: string): string {
  const trimmed = name.replace(/^(\.?\/)+/, '').replace(/\/+$/, '');
  return trimmed === '' || trimmed === '.' ? '/' : `/${trimmed}`;
}

function at(entry: IndexedTarEntry, what: TarDifferenceKind): TarDifference {
  return { path: printable(pathOf(entry.name), MAX_PATH_CHARS), what };
}
