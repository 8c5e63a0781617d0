import type { Readable } from 'node:stream';
import { BudgetExceededError } from '../budget.ts';
import { printable } from './printable.ts';
import { readNumber, TarFormatError } from './tar-fields.ts';
import { PaxSparseRecords, readGnuSparse, SPARSE_SEGMENTS_SETTING, type SparseFile, type SparseSegments } from './tar-sparse.ts';
import { xattrBytes, type EntryType, type TarHeader } from './tar-entry.ts';
import { decodeName, encodedNameLength } from './tar-name.ts';

/** A tar entry plus where its data starts in the (uncompressed) archive. */
export interface IndexedTarEntry extends TarHeader {
  dataOffset: number;
  /**
   * For a sparse file (tar-sparse.ts): where its data lies. The archive holds the segments'
   * bytes back to back from `dataOffset`; `size` is the real size, the rest is zeros.
   */
  sparse?: SparseSegments;
}

export { TarFormatError };

export interface TarIndexLimits {
  /** Largest single PAX or GNU long-name extension header (a limit of the reader, not a budget). */
  maxExtensionBytes: number;
  maxPathBytes: number;
  /** Entries of the archive: where it is a layer, the layer budget. */
  maxEntries: number;
  /**
   * The setting `maxEntries` comes from, named in the BudgetExceededError over it; none (an
   * archive's fixed limit, not an operator's budget) makes going over it a TarFormatError.
   */
  maxEntriesSetting?: string;
  /** Bytes of all extension headers (PAX, GNU long names and links) of the archive together. */
  maxExtensionBytesTotal: number;
  /** PAX records of one entry, over all its extended headers. */
  maxPaxRecordsPerEntry: number;
  /** Global PAX records of the archive, over all its global headers. */
  maxGlobalPaxRecords: number;
  /** Extended attributes of one entry, global ones included (they apply to every entry). */
  maxXattrsPerEntry: number;
  /** Bytes of one entry's extended attributes (names and values), global ones included. */
  maxXattrBytesPerEntry: number;
  /** Segments of one sparse file's map (each also counts 16 bytes against `maxExtensionBytesTotal`). */
  maxSparseSegmentsPerEntry: number;
}

/** The settings of the budgets among the limits, named when input goes over one. */
export const TAR_BUDGET_SETTINGS = {
  maxEntries: 'BALER_MAX_LAYER_ENTRIES',
  maxExtensionBytesTotal: 'BALER_MAX_TAR_EXTENSION_BYTES',
  maxPaxRecordsPerEntry: 'BALER_MAX_PAX_RECORDS_PER_ENTRY',
  maxGlobalPaxRecords: 'BALER_MAX_GLOBAL_PAX_RECORDS',
  maxXattrsPerEntry: 'BALER_MAX_XATTRS_PER_ENTRY',
  maxXattrBytesPerEntry: 'BALER_MAX_XATTR_BYTES_PER_ENTRY',
  maxSparseSegmentsPerEntry: SPARSE_SEGMENTS_SETTING,
} as const;

export const DEFAULT_TAR_LIMITS: TarIndexLimits = {
  maxExtensionBytes: 1 << 20,
  maxPathBytes: 4096,
  maxEntries: 1_000_000,
  maxEntriesSetting: TAR_BUDGET_SETTINGS.maxEntries,
  // GNU tar's pax format writes ~90 bytes (mtime, atime, ctime) per entry: room for 700k. What
  // is kept of them (long paths, link targets, xattrs) stays well within a build's 192 MiB heap.
  maxExtensionBytesTotal: 64 * 1024 ** 2,
  maxPaxRecordsPerEntry: 1000,
  // Writers put a comment or two there (git archive: the commit); globals are kept once.
  maxGlobalPaxRecords: 1000,
  // Linux caps one value at 64 KiB and ext4 all of an inode's at a block; real entries carry a few.
  maxXattrsPerEntry: 128,
  maxXattrBytesPerEntry: 64 * 1024,
  // A disk image with a hole every few MiB has thousands; 100k keep 1.6 MB. All the maps of a
  // tar together are bounded by maxExtensionBytesTotal (16 bytes a segment).
  maxSparseSegmentsPerEntry: 100_000,
};

const BLOCK = 512;

const TYPES: Record<string, EntryType> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file',
  '1': 'link',
  '2': 'symlink',
  '3': 'character-device',
  '4': 'block-device',
  '5': 'directory',
  '6': 'fifo',
};

/**
 * Reads an uncompressed tar stream and yields each entry's header with the byte offset of its
 * data, without keeping any data: the index lets a layer writer read entries later in any
 * order, by range, straight from the stored blob. It understands ustar, GNU and PAX archives
 * (long names and links, base-256 numbers, `SCHILY.xattr.` records, global headers) and sparse
 * files in GNU's and PAX's forms (tar-sparse.ts: such an entry has its real name and size, and
 * a map of where its data lies).
 *
 * Everything it keeps is bounded by the limits, checked as the archive is read: an archive
 * over a budget fails at the header that goes over it, having cost no more than the budget.
 *
 * Tar parsing is hand-written because no maintained library exposes data offsets.
 */
export async function* indexTar(source: Readable, limits: Partial<TarIndexLimits> = {}): AsyncGenerator<IndexedTarEntry> {
  try {
    yield* readEntries(new ChunkReader(source), { ...DEFAULT_TAR_LIMITS, ...limits });
  } finally {
    // The archive may go on past its end marker; stop reading (and close the file) either way.
    source.destroy();
  }
}

const XATTR_PREFIX = 'SCHILY.xattr.';
/** The PAX keys an entry uses; other records are counted against the budgets and dropped. */
const USED_KEYS = new Set(['path', 'linkpath', 'size', 'uid', 'gid', 'mtime']);
const NO_XATTRS: Readonly<Record<string, string>> = Object.freeze({});

/** Extended attributes with what they cost as the budgets count it: names and values in bytes. */
class XattrSet {
  readonly values = new Map<string, string>();
  bytes = 0;

  /** `value` as latin1: xattr values are binary, and so their bytes round-trip. */
  set(name: string, value: string): void {
    const old = this.values.get(name);
    if (old !== undefined) this.bytes -= xattrBytes(name, old);
    this.values.set(name, value);
    this.bytes += xattrBytes(name, value);
  }
}

/** The used records of PAX headers (global, or one entry's) and their extended attributes. */
class PaxRecords {
  readonly fields = new Map<string, string>();
  readonly xattrs = new XattrSet();
  /** `GNU.sparse.*` records: only an entry's own count (GNU tar never writes them globally). */
  readonly sparse = new PaxSparseRecords();
  /** Records and headers read, as the record budgets count them. */
  counted = 0;

  add(key: string, value: Buffer): void {
    if (key.startsWith(XATTR_PREFIX)) this.xattrs.set(key.slice(XATTR_PREFIX.length), value.toString('latin1'));
    // Names and link targets are bytes (hdrcharset=BINARY or not); the other values are ASCII.
    else if (USED_KEYS.has(key)) this.fields.set(key, decodeName(value));
  }
}

/**
 * Global records: kept once and read by every later entry, never copied into it. An entry
 * without extended attributes of its own shares the globals' one frozen object, so a global
 * header costs O(1) per entry; its attributes still count against every entry's budget.
 */
class GlobalRecords extends PaxRecords {
  /** The global attributes as one object, rebuilt when a global header changes them. */
  frozenXattrs: Readonly<Record<string, string>> = NO_XATTRS;

  override add(key: string, value: Buffer): void {
    // A global record with an empty value deletes it (POSIX pax); xattrs keep empty values.
    if (value.length === 0 && USED_KEYS.has(key)) this.fields.delete(key);
    else super.add(key, value);
  }

  freeze(): void {
    this.frozenXattrs = this.xattrs.values.size === 0 ? NO_XATTRS : Object.freeze(Object.fromEntries(this.xattrs.values));
  }
}

function overBudget(limits: TarIndexLimits, budget: keyof typeof TAR_BUDGET_SETTINGS, what: string, offset: number): BudgetExceededError {
  return new BudgetExceededError(TAR_BUDGET_SETTINGS[budget], limits[budget], `${what} (at byte ${offset})`);
}

function checkXattrs(count: number, bytes: number, limits: TarIndexLimits, what: string, offset: number): void {
  if (count > limits.maxXattrsPerEntry) throw overBudget(limits, 'maxXattrsPerEntry', `${what}: more than ${limits.maxXattrsPerEntry} extended attributes`, offset);
  if (bytes > limits.maxXattrBytesPerEntry) {
    throw overBudget(limits, 'maxXattrBytesPerEntry', `${what}: more than ${limits.maxXattrBytesPerEntry} bytes of extended attributes`, offset);
  }
}

/** An entry's attributes: the globals, overridden by its own. O(own + globals), both within budget. */
function entryXattrs(globals: GlobalRecords, own: XattrSet, limits: TarIndexLimits, offset: number): Readonly<Record<string, string>> {
  if (own.values.size === 0) return globals.frozenXattrs;
  let count = globals.xattrs.values.size + own.values.size;
  let bytes = globals.xattrs.bytes + own.bytes;
  for (const name of own.values.keys()) {
    const shadowed = globals.xattrs.values.get(name);
    if (shadowed !== undefined) {
      count -= 1;
      bytes -= xattrBytes(name, shadowed);
    }
  }
  checkXattrs(count, bytes, limits, 'tar entry', offset);
  return { ...globals.frozenXattrs, ...Object.fromEntries(own.values) };
}

async function* readEntries(reader: ChunkReader, limits: TarIndexLimits): AsyncGenerator<IndexedTarEntry> {
  const globals = new GlobalRecords();
  // What the extension headers before the next entry say about it.
  let own = new PaxRecords();
  let gnuLongName: string | undefined;
  let gnuLongLink: string | undefined;
  let extensionBytes = 0;
  let entries = 0;

  for (;;) {
    const offset = reader.position;
    const block = await reader.read(BLOCK);
    if (block === null || block.length < BLOCK) {
      if (block === null && offset > 0) return; // EOF without the end marker: tolerated, like GNU tar
      throw new TarFormatError(offset === 0 ? 'not a tar archive: empty' : 'truncated tar header', offset);
    }
    if (isZero(block)) return;
    verifyChecksum(block, offset);

    const flag = String.fromCharCode(block[156] ?? 0);
    const size = readNumber(block, 124, 12, offset);
    if (flag === 'x' || flag === 'g' || flag === 'L' || flag === 'K') {
      if (size > limits.maxExtensionBytes) {
        throw new TarFormatError(`extension header of ${size} bytes exceeds the limit of ${limits.maxExtensionBytes}`, offset);
      }
      extensionBytes += size;
      if (extensionBytes > limits.maxExtensionBytesTotal) {
        throw overBudget(limits, 'maxExtensionBytesTotal', `more than ${limits.maxExtensionBytesTotal} bytes of extension headers in one tar`, offset);
      }
      const data = await reader.read(size);
      if (data === null || data.length < size) throw new TarFormatError('truncated extension header', offset);
      await reader.skip(padding(size));
      // Every header counts as a record at least, so that empty ones cannot repeat for free.
      const records = flag === 'g' ? globals : own;
      const budget = flag === 'g' ? 'maxGlobalPaxRecords' : 'maxPaxRecordsPerEntry';
      const count = () => {
        if (++records.counted > limits[budget]) {
          throw overBudget(limits, budget, flag === 'g' ? `more than ${limits[budget]} global PAX records in one tar` : `more than ${limits[budget]} PAX records for one entry`, offset);
        }
      };
      if (flag === 'L' || flag === 'K') {
        count();
        if (flag === 'L') gnuLongName = cString(data);
        else gnuLongLink = cString(data);
        continue;
      }
      const parsed = parsePax(data, offset, (key, value) => {
        // A 0.0 sparse map's segments are counted by the sparse budget instead.
        if (flag === 'x' && own.sparse.add(key, value, limits, offset) === 'segment') return;
        count();
        records.add(key, value);
      });
      if (parsed === 0) count();
      if (flag === 'g') {
        // Global attributes apply to every later entry: alone they must fit one entry's budget.
        checkXattrs(globals.xattrs.values.size, globals.xattrs.bytes, limits, 'global PAX header', offset);
        globals.freeze();
      } else {
        checkXattrs(own.xattrs.values.size, own.xattrs.bytes, limits, 'PAX header', offset);
      }
      continue;
    }

    // GNU's old sparse form is a regular file with its map in the header.
    const type = flag === 'S' ? 'file' : TYPES[flag];
    if (!type) throw new TarFormatError(`unsupported tar entry type '${printable(flag)}'`, offset);
    if (++entries > limits.maxEntries) {
      const what = `more than ${limits.maxEntries} entries in one tar`;
      if (limits.maxEntriesSetting === undefined) throw new TarFormatError(what, offset);
      throw new BudgetExceededError(limits.maxEntriesSetting, limits.maxEntries, `${what} (at byte ${offset})`);
    }

    // An entry's own record wins; its empty value deletes the global one (POSIX pax).
    const record = (key: string): string | undefined => {
      const value = own.fields.get(key);
      if (value !== undefined) return value === '' ? undefined : value;
      return globals.fields.get(key);
    };
    const isUstar = block.subarray(257, 263).toString('latin1') === 'ustar\0';
    let name = cString(block.subarray(0, 100));
    if (isUstar) {
      const prefix = cString(block.subarray(345, 500));
      if (prefix) name = `${prefix}/${name}`;
    }
    name = record('path') ?? gnuLongName ?? name;
    const linkname = record('linkpath') ?? gnuLongLink ?? cString(block.subarray(157, 257));
    if (encodedNameLength(name) > limits.maxPathBytes || encodedNameLength(linkname) > limits.maxPathBytes) {
      throw new TarFormatError(`path longer than ${limits.maxPathBytes} bytes`, offset);
    }

    const paxSize = record('size');
    const paxUid = record('uid');
    const paxGid = record('gid');
    const paxMtime = record('mtime');
    const entrySize = paxSize !== undefined ? paxInteger(paxSize, 'size', offset) : size;
    // Reads the map (from extension blocks, or the start of the data) when the entry is sparse.
    const sparse = await readSparse(flag, block, own.sparse, entrySize, reader, limits, offset);
    if (sparse) {
      extensionBytes += sparse.chargedBytes;
      if (extensionBytes > limits.maxExtensionBytesTotal) {
        throw overBudget(limits, 'maxExtensionBytesTotal', `more than ${limits.maxExtensionBytesTotal} bytes of extension headers and sparse maps in one tar`, offset);
      }
      if (sparse.name !== undefined) name = decodeName(sparse.name);
      if (encodedNameLength(name) > limits.maxPathBytes) throw new TarFormatError(`path longer than ${limits.maxPathBytes} bytes`, offset);
    }
    /** The entry's bytes left in the archive: all of them, but a 1.0 sparse map read already. */
    const storedBytes = entrySize - (sparse?.mapBytes ?? 0);
    const entry: IndexedTarEntry = {
      name,
      type,
      mode: readNumber(block, 100, 8, offset) & 0o7777,
      uid: paxUid !== undefined ? paxInteger(paxUid, 'uid', offset) : readNumber(block, 108, 8, offset),
      gid: paxGid !== undefined ? paxInteger(paxGid, 'gid', offset) : readNumber(block, 116, 8, offset),
      size: type !== 'file' ? 0 : sparse ? sparse.realSize : entrySize,
      mtime: paxMtime !== undefined ? paxTime(paxMtime, 'mtime', offset) : readNumber(block, 136, 12, offset),
      linkname,
      devmajor: isUstar || flag === '3' || flag === '4' ? readNumber(block, 329, 8, offset) : 0,
      devminor: isUstar || flag === '3' || flag === '4' ? readNumber(block, 337, 8, offset) : 0,
      xattrs: entryXattrs(globals, own.xattrs, limits, offset),
      dataOffset: reader.position,
    };
    if (sparse) entry.sparse = sparse.segments;
    own = new PaxRecords();
    gnuLongName = undefined;
    gnuLongLink = undefined;
    yield entry;
    // Entries other than regular files may still carry data blocks (e.g. a hard link with a
    // size): skip what the header says is there.
    await reader.skip(storedBytes + padding(storedBytes));
  }
}

/** The sparse file a GNU `S` header or an entry's `GNU.sparse.*` records describe, if any. */
async function readSparse(
  flag: string,
  block: Buffer,
  records: PaxSparseRecords,
  storedBytes: number,
  reader: ChunkReader,
  limits: TarIndexLimits,
  offset: number,
): Promise<SparseFile | undefined> {
  if (flag === 'S') return readGnuSparse(block, storedBytes, reader, limits, offset);
  if (!records.present) return undefined;
  if (flag !== '0' && flag !== '\0' && flag !== '7') throw new TarFormatError(`GNU.sparse records on a tar entry of type '${printable(flag)}'`, offset);
  return records.read(storedBytes, reader, limits, offset);
}

function padding(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

function isZero(block: Buffer): boolean {
  for (const byte of block) if (byte !== 0) return false;
  return true;
}

function verifyChecksum(block: Buffer, offset: number): void {
  const stored = readNumber(block, 148, 8, offset, 'not a tar archive: bad header checksum');
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : (block[i] ?? 0);
  if (sum !== stored) throw new TarFormatError('not a tar archive: bad header checksum', offset);
}

/** A PAX count (size, uid, gid): decimal digits only, a safe integer. */
function paxInteger(value: string, key: string, offset: number): number {
  if (!/^\d+$/.test(value)) throw new TarFormatError(`invalid PAX ${key} '${printable(value)}'`, offset);
  const number = Number(value);
  if (!Number.isSafeInteger(number)) throw new TarFormatError(`PAX ${key} too large`, offset);
  return number;
}

/** A PAX time: decimal seconds, maybe signed, maybe with a fraction (dropped: floor). */
function paxTime(value: string, key: string, offset: number): number {
  if (!/^[+-]?\d+(\.\d+)?$/.test(value)) throw new TarFormatError(`invalid PAX ${key} '${printable(value)}'`, offset);
  const seconds = Math.floor(Number(value));
  if (!Number.isSafeInteger(seconds)) throw new TarFormatError(`PAX ${key} out of range`, offset);
  return seconds;
}

/** A NUL-terminated name field (or GNU long name) as the bytes it holds (tar-name.ts). */
function cString(buf: Buffer): string {
  const end = buf.indexOf(0);
  return decodeName(buf.subarray(0, end === -1 ? buf.length : end));
}

/** Longest length field read: a record's length has at most this many digits (1 MiB has 7). */
const MAX_LENGTH_DIGITS = 12;

/**
 * PAX records: `<len> <key>=<value>\n`, where len counts the whole record. Calls `onRecord`
 * for each, in order, and returns how many there were. Linear in the data.
 */
function parsePax(data: Buffer, offset: number, onRecord: (key: string, value: Buffer) => void): number {
  let pos = 0;
  let records = 0;
  while (pos < data.length) {
    if (data[pos] === 0) break;
    let len = 0;
    let digitsEnd = pos;
    for (; digitsEnd < data.length && digitsEnd - pos < MAX_LENGTH_DIGITS; digitsEnd++) {
      const byte = data[digitsEnd] ?? 0;
      if (byte < 0x30 || byte > 0x39) break;
      len = len * 10 + (byte - 0x30);
    }
    const end = pos + len;
    if (digitsEnd === pos || data[digitsEnd] !== 0x20 || end <= digitsEnd + 1 || end > data.length || data[end - 1] !== 0x0a) {
      throw new TarFormatError('malformed PAX record', offset);
    }
    const record = data.subarray(digitsEnd + 1, end - 1);
    const eq = record.indexOf(0x3d);
    if (eq <= 0) throw new TarFormatError('malformed PAX record', offset);
    // Keys as bytes too: `SCHILY.xattr.` names are file system names, whatever bytes they hold.
    onRecord(decodeName(record.subarray(0, eq)), record.subarray(eq + 1));
    records++;
    pos = end;
  }
  return records;
}

/** Sequential reader over a stream that can read or skip exact byte counts. */
class ChunkReader {
  position = 0;
  private readonly iterator: AsyncIterator<Buffer>;
  private pending: Buffer = Buffer.alloc(0);
  private done = false;

  constructor(source: Readable) {
    this.iterator = source[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  }

  private async next(): Promise<Buffer | null> {
    if (this.done) return null;
    const next = await this.iterator.next();
    if (next.done) {
      this.done = true;
      return null;
    }
    return next.value;
  }

  /** Returns up to n bytes (fewer only at end of stream), or null at end of stream. */
  async read(n: number): Promise<Buffer | null> {
    if (this.pending.length < n) {
      // Gathered first and joined once: growing one buffer chunk by chunk would copy O(n²).
      const parts = this.pending.length > 0 ? [this.pending] : [];
      let length = this.pending.length;
      while (length < n) {
        const chunk = await this.next();
        if (!chunk) break;
        parts.push(chunk);
        length += chunk.length;
      }
      if (parts.length > 0) this.pending = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, length);
    }
    if (this.pending.length === 0 && n > 0) return null;
    const out = this.pending.subarray(0, n);
    this.pending = this.pending.subarray(out.length);
    this.position += out.length;
    return out;
  }

  async skip(n: number): Promise<void> {
    let left = n;
    while (left > 0) {
      if (this.pending.length === 0) {
        const chunk = await this.next();
        if (!chunk) throw new TarFormatError('truncated tar entry data', this.position);
        this.pending = chunk;
      }
      const take = Math.min(left, this.pending.length);
      this.pending = this.pending.subarray(take);
      this.position += take;
      left -= take;
    }
  }
}
