import { isUtf8 } from 'node:buffer';

/**
 * Names and link targets as tars hold them: byte strings, not text. They are kept as JS strings
 * decoded the way Python's `surrogateescape` (PEP 383) decodes file names: valid UTF-8 decodes as
 * usual, and each byte of a sequence that is not UTF-8 becomes the lone surrogate U+DC80..U+DCFF
 * (0xDC00 + the byte). Encoding maps those surrogates back to their bytes, so that every byte
 * string round-trips exactly, two names differing in any byte stay two strings, and a name that is
 * valid UTF-8 is the very string a spec (JSON) writes for it.
 *
 * Everything that writes, measures, sorts or hashes a name goes through this file: UTF-8 as
 * `Buffer.from(name)` or `Buffer.byteLength(name)` computes it would turn every escaped byte into
 * U+FFFD's three bytes.
 */

const ESCAPE_BASE = 0xdc00;
const FIRST_ESCAPE = 0xdc80;
const LAST_ESCAPE = 0xdcff;

/** No lone surrogates: UTF-8 as Node writes it is then the name's bytes (String.prototype.isWellFormed, ES2024). */
function isWellFormed(text: string): boolean {
  return (text as string & { isWellFormed(): boolean }).isWellFormed();
}

/** Thrown by `encodeName` for a string holding a lone surrogate that stands for no byte. */
export class UnencodableNameError extends Error {
  constructor(readonly index: number) {
    super(`a lone surrogate at character ${index} stands for no byte`);
    this.name = 'UnencodableNameError';
  }
}

/** A name's bytes as a string: UTF-8 where valid, each other byte as U+DC80..U+DCFF. O(n). */
export function decodeName(bytes: Uint8Array): string {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (isUtf8(buf)) return buf.toString('utf8');
  let out = '';
  let validFrom = 0;
  let i = 0;
  while (i < buf.length) {
    const length = utf8SequenceLength(buf, i);
    if (length > 0) {
      i += length;
      continue;
    }
    if (validFrom < i) out += buf.toString('utf8', validFrom, i);
    out += String.fromCharCode(ESCAPE_BASE + (buf[i] as number));
    i += 1;
    validFrom = i;
  }
  if (validFrom < buf.length) out += buf.toString('utf8', validFrom);
  return out;
}

/**
 * The length of the well-formed UTF-8 sequence at `i` (1 to 4), or 0 when the byte there does
 * not start one (Unicode's table 3-7: no overlong forms, no surrogates, nothing past U+10FFFF).
 */
function utf8SequenceLength(buf: Buffer, i: number): number {
  const b0 = buf[i] as number;
  if (b0 < 0x80) return 1;
  const continuation = (at: number, low = 0x80, high = 0xbf): boolean => {
    const b = buf[at];
    return b !== undefined && b >= low && b <= high;
  };
  if (b0 >= 0xc2 && b0 <= 0xdf) return continuation(i + 1) ? 2 : 0;
  if (b0 >= 0xe0 && b0 <= 0xef) {
    const low = b0 === 0xe0 ? 0xa0 : 0x80;
    const high = b0 === 0xed ? 0x9f : 0xbf;
    return continuation(i + 1, low, high) && continuation(i + 2) ? 3 : 0;
  }
  if (b0 >= 0xf0 && b0 <= 0xf4) {
    const low = b0 === 0xf0 ? 0x90 : 0x80;
    const high = b0 === 0xf4 ? 0x8f : 0xbf;
    return continuation(i + 1, low, high) && continuation(i + 2) && continuation(i + 3) ? 4 : 0;
  }
  return 0;
}

/**
 * The bytes a name stands for: UTF-8, each U+DC80..U+DCFF as its byte. Throws
 * UnencodableNameError for any other lone surrogate (no byte string decodes to one).
 */
export function encodeName(name: string): Buffer {
  if (isWellFormed(name)) return Buffer.from(name, 'utf8');
  const parts: Buffer[] = [];
  let from = 0;
  for (let i = 0; i < name.length; i++) {
    const unit = name.charCodeAt(i);
    if (unit < 0xd800 || unit > 0xdfff) continue;
    if (unit <= 0xdbff) {
      const next = name.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        i++; // a pair: UTF-8 as it is
        continue;
      }
      throw new UnencodableNameError(i);
    }
    if (unit < FIRST_ESCAPE || unit > LAST_ESCAPE) throw new UnencodableNameError(i);
    if (from < i) parts.push(Buffer.from(name.slice(from, i), 'utf8'));
    parts.push(Buffer.of(unit - ESCAPE_BASE));
    from = i + 1;
  }
  if (from < name.length) parts.push(Buffer.from(name.slice(from), 'utf8'));
  return Buffer.concat(parts);
}

/** `encodeName(name).length` without making the bytes (for the byte limits on names). */
export function encodedNameLength(name: string): number {
  if (isWellFormed(name)) return Buffer.byteLength(name, 'utf8');
  return encodeName(name).length;
}

/**
 * Whether `name` is the one string its bytes decode to. Names read from tars always are; a
 * string from a spec is not when it escapes bytes that form UTF-8 (`\udcc3\udca9` for `é`), or
 * holds a surrogate that stands for no byte: such a name would be a second spelling of a name
 * (two entries of one path), or no name at all.
 */
export function isCanonicalName(name: string): boolean {
  if (isWellFormed(name)) return true;
  try {
    return decodeName(encodeName(name)) === name;
  } catch (err) {
    if (err instanceof UnencodableNameError) return false;
    throw err;
  }
}

/** Whether the name's bytes are UTF-8 (a PAX record holding them then needs no `hdrcharset`). */
export function isUtf8Name(name: string): boolean {
  return isWellFormed(name);
}

/**
 * Names in the order of their bytes (as `Buffer.compare` of their encodings), without encoding
 * them: the order a reproducible tar is written in. JS's `<` compares UTF-16 code units, which
 * puts U+E000..U+FFFF after astral characters and escaped bytes in the wrong places.
 * O(length of the common prefix).
 */
export function compareNames(a: string, b: string): number {
  const left = new NameBytes(a);
  const right = new NameBytes(b);
  for (;;) {
    const x = left.next();
    const y = right.next();
    if (x !== y) return x < y ? -1 : 1; // the end (-1) sorts first: a prefix before what extends it
    if (x === -1) return 0;
  }
}

/** The bytes of a name one at a time, as `encodeName` would give them; -1 at the end. */
class NameBytes {
  private index = 0;
  private readonly pending: number[] = [];

  constructor(private readonly name: string) {}

  next(): number {
    if (this.pending.length > 0) return this.pending.shift() as number;
    if (this.index >= this.name.length) return -1;
    const point = this.name.codePointAt(this.index) as number;
    this.index += point > 0xffff ? 2 : 1;
    if (point < 0x80) return point;
    if (point >= FIRST_ESCAPE && point <= LAST_ESCAPE) return point - ESCAPE_BASE;
    if (point >= 0xd800 && point <= 0xdfff) throw new UnencodableNameError(this.index - 1);
    if (point < 0x800) {
      this.pending.push(0x80 | (point & 0x3f));
      return 0xc0 | (point >> 6);
    }
    if (point < 0x10000) {
      this.pending.push(0x80 | ((point >> 6) & 0x3f), 0x80 | (point & 0x3f));
      return 0xe0 | (point >> 12);
    }
    this.pending.push(0x80 | ((point >> 12) & 0x3f), 0x80 | ((point >> 6) & 0x3f), 0x80 | (point & 0x3f));
    return 0xf0 | (point >> 18);
  }
}
