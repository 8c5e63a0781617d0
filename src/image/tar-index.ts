import type { Readable } from 'node:stream';
import type { EntryType, TarHeader } from './tar-entry.ts';

/** A tar entry plus where its data starts in the (uncompressed) archive. */
export interface IndexedTarEntry extends TarHeader {
  dataOffset: number;
}

export class TarFormatError extends Error {
  constructor(message: string, readonly offset: number) {
    super(`${message} (at byte ${offset})`);
    this.name = 'TarFormatError';
  }
}

export interface TarIndexLimits {
  /** Largest PAX or GNU long-name extension header accepted. */
  maxExtensionBytes: number;
  maxPathBytes: number;
  maxEntries: number;
}

export const DEFAULT_TAR_LIMITS: TarIndexLimits = {
  maxExtensionBytes: 1 << 20,
  maxPathBytes: 4096,
  maxEntries: 1_000_000,
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
 * (long names and links, base-256 numbers, `SCHILY.xattr.` records).
 *
 * Tar parsing is hand-written because no maintained library exposes data offsets.
 */
export async function* indexTar(
  source: Readable,
  limits: TarIndexLimits = DEFAULT_TAR_LIMITS,
): AsyncGenerator<IndexedTarEntry> {
  try {
    yield* readEntries(new ChunkReader(source), limits);
  } finally {
    // The archive may go on past its end marker; stop reading (and close the file) either way.
    source.destroy();
  }
}

async function* readEntries(reader: ChunkReader, limits: TarIndexLimits): AsyncGenerator<IndexedTarEntry> {
  let pax: Record<string, string> = {};
  let globalPax: Record<string, string> = {};
  let gnuLongName: string | undefined;
  let gnuLongLink: string | undefined;
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
      const data = await reader.read(size);
      if (data === null || data.length < size) throw new TarFormatError('truncated extension header', offset);
      await reader.skip(padding(size));
      if (flag === 'x') pax = { ...pax, ...parsePax(data, offset) };
      else if (flag === 'g') globalPax = { ...globalPax, ...parsePax(data, offset) };
      else if (flag === 'L') gnuLongName = cString(data);
      else gnuLongLink = cString(data);
      continue;
    }

    const type = TYPES[flag];
    if (!type) throw new TarFormatError(`unsupported tar entry type '${printable(flag)}'`, offset);
    if (++entries > limits.maxEntries) throw new TarFormatError(`more than ${limits.maxEntries} entries`, offset);

    const records = { ...globalPax, ...pax };
    const isUstar = block.subarray(257, 263).toString('latin1') === 'ustar\0';
    let name = cString(block.subarray(0, 100));
    if (isUstar) {
      const prefix = cString(block.subarray(345, 500));
      if (prefix) name = `${prefix}/${name}`;
    }
    name = records.path ?? gnuLongName ?? name;
    const linkname = records.linkpath ?? gnuLongLink ?? cString(block.subarray(157, 257));
    if (Buffer.byteLength(name) > limits.maxPathBytes || Buffer.byteLength(linkname) > limits.maxPathBytes) {
      throw new TarFormatError(`path longer than ${limits.maxPathBytes} bytes`, offset);
    }

    const xattrs: Record<string, string> = {};
    for (const [key, value] of Object.entries(records)) {
      if (key.startsWith('SCHILY.xattr.')) xattrs[key.slice('SCHILY.xattr.'.length)] = value;
    }
    const entrySize = records.size !== undefined ? paxNumber(records.size, 'size', offset) : size;
    const dataSize = type === 'file' ? entrySize : 0;
    const entry: IndexedTarEntry = {
      name,
      type,
      mode: readNumber(block, 100, 8, offset) & 0o7777,
      uid: records.uid !== undefined ? paxNumber(records.uid, 'uid', offset) : readNumber(block, 108, 8, offset),
      gid: records.gid !== undefined ? paxNumber(records.gid, 'gid', offset) : readNumber(block, 116, 8, offset),
      size: dataSize,
      mtime: records.mtime !== undefined ? Math.floor(Number(records.mtime)) : readNumber(block, 136, 12, offset),
      linkname,
      devmajor: isUstar || flag === '3' || flag === '4' ? readNumber(block, 329, 8, offset) : 0,
      devminor: isUstar || flag === '3' || flag === '4' ? readNumber(block, 337, 8, offset) : 0,
      xattrs,
      dataOffset: reader.position,
    };
    pax = {};
    gnuLongName = undefined;
    gnuLongLink = undefined;
    yield entry;
    // Entries other than regular files may still carry data blocks (e.g. a hard link with a
    // size): skip what the header says is there.
    await reader.skip(entrySize + padding(entrySize));
  }
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

/** Octal text, or GNU base-256 when the high bit of the first byte is set. */
function readNumber(block: Buffer, start: number, length: number, offset: number, message = 'invalid number in tar header'): number {
  const field = block.subarray(start, start + length);
  if (((field[0] ?? 0) & 0x80) !== 0) {
    if ((field[0] ?? 0) & 0x40) throw new TarFormatError('negative number in tar header', offset);
    let value = (field[0] ?? 0) & 0x3f;
    for (let i = 1; i < field.length; i++) value = value * 256 + (field[i] ?? 0);
    if (!Number.isSafeInteger(value)) throw new TarFormatError('number in tar header too large', offset);
    return value;
  }
  const text = field.toString('latin1').replace(/\0.*$/s, '').trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw new TarFormatError(message, offset);
  return parseInt(text, 8);
}

function paxNumber(value: string, key: string, offset: number): number {
  if (!/^\d+$/.test(value)) throw new TarFormatError(`invalid PAX ${key} '${value}'`, offset);
  const number = Number(value);
  if (!Number.isSafeInteger(number)) throw new TarFormatError(`PAX ${key} too large`, offset);
  return number;
}

function cString(buf: Buffer): string {
  const end = buf.indexOf(0);
  return buf.subarray(0, end === -1 ? buf.length : end).toString('utf8');
}

function printable(flag: string): string {
  return /^[\x20-\x7e]$/.test(flag) ? flag : `\\x${flag.charCodeAt(0).toString(16).padStart(2, '0')}`;
}

/** PAX records: `<len> <key>=<value>\n`, where len counts the whole record. */
function parsePax(data: Buffer, offset: number): Record<string, string> {
  const records: Record<string, string> = {};
  let pos = 0;
  while (pos < data.length) {
    if (data[pos] === 0) break;
    const space = data.indexOf(0x20, pos);
    const len = space === -1 ? NaN : Number(data.subarray(pos, space).toString('latin1'));
    if (!Number.isSafeInteger(len) || len <= 0 || pos + len > data.length || data[pos + len - 1] !== 0x0a) {
      throw new TarFormatError('malformed PAX record', offset);
    }
    const record = data.subarray(space + 1, pos + len - 1);
    const eq = record.indexOf(0x3d);
    if (eq <= 0) throw new TarFormatError('malformed PAX record', offset);
    const key = record.subarray(0, eq).toString('utf8');
    // xattr values are binary; keep their bytes as latin1 so they round-trip.
    const value = record.subarray(eq + 1).toString(key.startsWith('SCHILY.xattr.') ? 'latin1' : 'utf8');
    records[key] = value;
    pos += len;
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

  private async fill(): Promise<boolean> {
    if (this.done) return false;
    const next = await this.iterator.next();
    if (next.done) {
      this.done = true;
      return false;
    }
    this.pending = this.pending.length ? Buffer.concat([this.pending, next.value]) : next.value;
    return true;
  }

  /** Returns up to n bytes (fewer only at end of stream), or null at end of stream. */
  async read(n: number): Promise<Buffer | null> {
    while (this.pending.length < n && (await this.fill()));
    if (this.pending.length === 0 && n > 0) return null;
    const out = this.pending.subarray(0, n);
    this.pending = this.pending.subarray(out.length);
    this.position += out.length;
    return out;
  }

  async skip(n: number): Promise<void> {
    let left = n;
    while (left > 0) {
      if (this.pending.length === 0 && !(await this.fill())) throw new TarFormatError('truncated tar entry data', this.position);
      const take = Math.min(left, this.pending.length);
      this.pending = this.pending.subarray(take);
      this.position += take;
      left -= take;
    }
  }
}
