import { printable } from './printable.ts';
import { TarFormatError } from './tar-fields.ts';
import { xattrBytes } from './tar-entry.ts';
import { tarOverBudget, type TarIndexLimits } from './tar-limits.ts';
import { decodeName } from './tar-name.ts';
import { PaxSparseRecords } from './tar-sparse-pax.ts';

// PAX extended headers as the tar index reads them: their records, the extended attributes
// they carry (within budgets), and their numbers.

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
export class PaxRecords {
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
export class GlobalRecords extends PaxRecords {
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

/** An entry's (or a global header's) extended attributes against their budgets. */
export function checkXattrs(count: number, bytes: number, limits: TarIndexLimits, what: string, offset: number): void {
  if (count > limits.maxXattrsPerEntry) throw tarOverBudget(limits, 'maxXattrsPerEntry', `${what}: more than ${limits.maxXattrsPerEntry} extended attributes`, offset);
  if (bytes > limits.maxXattrBytesPerEntry) {
    throw tarOverBudget(limits, 'maxXattrBytesPerEntry', `${what}: more than ${limits.maxXattrBytesPerEntry} bytes of extended attributes`, offset);
  }
}

/** An entry's attributes: the globals, overridden by its own. O(own + globals), both within budget. */
export function entryXattrs(globals: GlobalRecords, own: XattrSet, limits: TarIndexLimits, offset: number): Readonly<Record<string, string>> {
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

/** A PAX count (size, uid, gid): decimal digits only, a safe integer. */
export function paxInteger(value: string, key: string, offset: number): number {
  if (!/^\d+$/.test(value)) throw new TarFormatError(`invalid PAX ${key} '${printable(value)}'`, offset);
  const number = Number(value);
  if (!Number.isSafeInteger(number)) throw new TarFormatError(`PAX ${key} too large`, offset);
  return number;
}

/** A PAX time: decimal seconds, maybe signed, maybe with a fraction (dropped: floor). */
export function paxTime(value: string, key: string, offset: number): number {
  if (!/^[+-]?\d+(\.\d+)?$/.test(value)) throw new TarFormatError(`invalid PAX ${key} '${printable(value)}'`, offset);
  const seconds = Math.floor(Number(value));
  if (!Number.isSafeInteger(seconds)) throw new TarFormatError(`PAX ${key} out of range`, offset);
  return seconds;
}

/** Longest length field read: a record's length has at most this many digits (1 MiB has 7). */
const MAX_LENGTH_DIGITS = 12;

/**
 * PAX records: `<len> <key>=<value>\n`, where len counts the whole record. Calls `onRecord`
 * for each, in order, and returns how many there were. Linear in the data.
 */
export function parsePax(data: Buffer, offset: number, onRecord: (key: string, value: Buffer) => void): number {
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
