import type { Readable } from 'node:stream';
import { BudgetExceededError } from '../budget.ts';
import { printable } from './printable.ts';
import { readNumber, TarFormatError } from './tar-fields.ts';
import { ChunkReader } from './tar-chunk-reader.ts';
import type { EntryType, TarHeader } from './tar-entry.ts';
import { DEFAULT_TAR_LIMITS, tarOverBudget, type TarIndexLimits } from './tar-limits.ts';
import { decodeName, encodedNameLength } from './tar-name.ts';
import { checkXattrs, entryXattrs, GlobalRecords, paxInteger, parsePax, PaxRecords, paxTime } from './tar-pax.ts';
import type { SparseFile, SparseSegments } from './tar-sparse.ts';
import { readGnuSparse } from './tar-sparse-gnu.ts';
import type { PaxSparseRecords } from './tar-sparse-pax.ts';

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
        throw tarOverBudget(limits, 'maxExtensionBytesTotal', `more than ${limits.maxExtensionBytesTotal} bytes of extension headers in one tar`, offset);
      }
      const data = await reader.read(size);
      if (data === null || data.length < size) throw new TarFormatError('truncated extension header', offset);
      await reader.skip(padding(size));
      // Every header counts as a record at least, so that empty ones cannot repeat for free.
      const records = flag === 'g' ? globals : own;
      const budget = flag === 'g' ? 'maxGlobalPaxRecords' : 'maxPaxRecordsPerEntry';
      const count = () => {
        if (++records.counted > limits[budget]) {
          throw tarOverBudget(limits, budget, flag === 'g' ? `more than ${limits[budget]} global PAX records in one tar` : `more than ${limits[budget]} PAX records for one entry`, offset);
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
        throw tarOverBudget(limits, 'maxExtensionBytesTotal', `more than ${limits.maxExtensionBytesTotal} bytes of extension headers and sparse maps in one tar`, offset);
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
async function readSparse(flag: string, block: Buffer, records: PaxSparseRecords, storedBytes: number, reader: ChunkReader, limits: TarIndexLimits, offset: number): Promise<SparseFile | undefined> {
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

/** A NUL-terminated name field (or GNU long name) as the bytes it holds (tar-name.ts). */
function cString(buf: Buffer): string {
  const end = buf.indexOf(0);
  return decodeName(buf.subarray(0, end === -1 ? buf.length : end));
}
