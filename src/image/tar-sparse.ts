import { BudgetExceededError } from '../budget.ts';
import { printable } from './printable.ts';
import { readNumber, TarFormatError } from './tar-fields.ts';

/**
 * Sparse files in tar archives, in every form GNU tar and libarchive write them:
 *
 * - GNU old form (`--format=gnu|oldgnu -S`): typeflag `S`, four (offset, length) pairs in the
 *   header at byte 386, `isextended` at 482, the real size at 483, then extension blocks of 21
 *   pairs each (`isextended` at 504) before the data.
 * - PAX `GNU.sparse` 0.0: repeated `GNU.sparse.offset` / `GNU.sparse.numbytes` records.
 * - PAX 0.1: one `GNU.sparse.map` record, `offset,length,offset,length,…`.
 * - PAX 1.0 (GNU tar's `--sparse-version=1.0`, bsdtar's default): `GNU.sparse.major=1`,
 *   `minor=0`, the map as decimal lines at the start of the entry's data, padded to 512 bytes.
 *
 * In every form the archive holds the data of the segments back to back, and everything else
 * of the file is zeros. A map's size is chosen by whoever wrote the archive, so reading one is
 * bounded by a budget (segments per entry) and every segment read counts against the tar's
 * extension-bytes budget; a map that does not describe a file (segments out of order,
 * overlapping, past the real size, data not matching their sum) is a TarFormatError.
 */

/**
 * Where a sparse file's data lies: (offset, length) pairs in ascending order, none empty and
 * none touching the next; the archive holds their bytes back to back, the rest is zeros.
 * 16 bytes a segment, and a frozen shape that crosses to a worker thread as it is.
 */
export type SparseSegments = Float64Array;

/** A sparse entry as read: what its data stands for. */
export interface SparseFile {
  segments: SparseSegments;
  /** Size of the file the entry stands for. */
  realSize: number;
  /** The real name, where the form keeps it apart from the header's (`GNU.sparse.name`). */
  name?: Buffer;
  /** Bytes at the start of the entry's data the map took (PAX 1.0), before the segments' data. */
  mapBytes: number;
  /** What reading the map cost, in bytes counted against the tar's extension-bytes budget. */
  chargedBytes: number;
}

export interface SparseLimits {
  /** Segments one entry's map may list (empty ones included). */
  maxSparseSegmentsPerEntry: number;
}

export const SPARSE_SEGMENTS_SETTING = 'BALER_MAX_SPARSE_SEGMENTS_PER_ENTRY';

/**
 * Bytes each segment read counts against the tar's extension-bytes budget: what the index keeps
 * of it. So all the maps of one tar together keep no more memory than that budget allows.
 */
export const SPARSE_SEGMENT_COST = 16;

/** Sequential reads of the archive at the current position (the tar index's reader). */
export interface ArchiveReads {
  read(n: number): Promise<Buffer | null>;
}

const BLOCK = 512;
/** Digits of the largest number a map may hold (2^53 − 1 has 16). */
const MAX_DIGITS = 16;

/**
 * Collects a map's segments as they are read, checking each against the ones before: O(1) per
 * segment, O(n) in all. Empty segments are dropped and touching ones joined.
 */
class SegmentCollector {
  private readonly pairs: number[] = [];
  /** Where the last segment read ends: the next must not start before it. */
  private end = 0;
  private dataBytes = 0;
  /** Segments and GNU extension blocks read, as the budget counts them. */
  private counted = 0;

  constructor(
    private readonly limits: SparseLimits,
    private readonly offset: number,
  ) {}

  count(): void {
    if (++this.counted > this.limits.maxSparseSegmentsPerEntry) throw overBudget(this.limits, this.offset);
  }

  /** Fails at once when a map announces more segments than the budget, before any is read. */
  announce(segments: number): void {
    if (segments > this.limits.maxSparseSegmentsPerEntry) throw overBudget(this.limits, this.offset);
  }

  add(start: number, length: number, storedBytes: number): void {
    this.count();
    if (start < this.end) throw new TarFormatError('sparse map: segments overlap or are out of order', this.offset);
    this.dataBytes += length;
    // Checked as it grows, so that the sum stays small and exact.
    if (this.dataBytes > storedBytes) {
      throw new TarFormatError(`sparse map: segments hold more than the ${storedBytes} bytes of data the entry has`, this.offset);
    }
    this.end = start + length;
    if (length === 0) return;
    const last = this.pairs.length - 2;
    if (last >= 0 && (this.pairs[last] ?? 0) + (this.pairs[last + 1] ?? 0) === start) this.pairs[last + 1] = (this.pairs[last + 1] ?? 0) + length;
    else this.pairs.push(start, length);
  }

  finish(realSize: number, storedBytes: number, name: Buffer | undefined, mapBytes: number): SparseFile {
    if (this.end > realSize) throw new TarFormatError(`sparse map: a segment ends past the file's size of ${realSize} bytes`, this.offset);
    if (this.dataBytes !== storedBytes) {
      throw new TarFormatError(`sparse map: segments hold ${this.dataBytes} bytes but the entry has ${storedBytes} bytes of data`, this.offset);
    }
    const file: SparseFile = { segments: Float64Array.from(this.pairs), realSize, mapBytes, chargedBytes: this.counted * SPARSE_SEGMENT_COST };
    if (name !== undefined) file.name = name;
    return file;
  }
}

function overBudget(limits: SparseLimits, offset: number): BudgetExceededError {
  const limit = limits.maxSparseSegmentsPerEntry;
  return new BudgetExceededError(SPARSE_SEGMENTS_SETTING, limit, `a sparse file's map with more than ${limit} segments (at byte ${offset})`);
}

function decimal(text: string, what: string, offset: number): number {
  if (!/^\d+$/.test(text) || text.length > MAX_DIGITS) throw new TarFormatError(`sparse map: invalid ${what} '${printable(text, 32)}'`, offset);
  const value = Number(text);
  if (!Number.isSafeInteger(value)) throw new TarFormatError(`sparse map: ${what} too large`, offset);
  return value;
}

/** A pair of GNU's old header form is unused when both its fields start with NUL. */
function isUnusedPair(block: Buffer, at: number): boolean {
  return block[at] === 0 && block[at + 12] === 0;
}

/**
 * The map of a GNU old-form sparse entry (typeflag `S`): the pairs in its header and in the
 * extension blocks that follow it, read from `reads`, which is left at the entry's data.
 * `storedBytes` is the header's size: the segments' data in the archive.
 */
export async function readGnuSparse(header: Buffer, storedBytes: number, reads: ArchiveReads, limits: SparseLimits, offset: number): Promise<SparseFile> {
  const collector = new SegmentCollector(limits, offset);
  const takePairs = (block: Buffer, from: number, pairs: number) => {
    for (let i = 0; i < pairs; i++) {
      const at = from + i * 24;
      if (isUnusedPair(block, at)) continue;
      collector.add(readNumber(block, at, 12, offset, 'sparse map: invalid offset'), readNumber(block, at + 12, 12, offset, 'sparse map: invalid length'), storedBytes);
    }
  };
  takePairs(header, 386, 4);
  const realSize = readNumber(header, 483, 12, offset, 'sparse map: invalid real size');
  let extended = header[482] !== 0;
  while (extended) {
    // A block counts once even when it holds no pair, so that empty blocks cannot chain for free.
    collector.count();
    const block = await reads.read(BLOCK);
    if (block === null || block.length < BLOCK) throw new TarFormatError('truncated sparse map', offset);
    takePairs(block, 0, 21);
    extended = block[504] !== 0;
  }
  return collector.finish(realSize, storedBytes, undefined, 0);
}

const SPARSE_KEY_PREFIX = 'GNU.sparse.';

/**
 * The `GNU.sparse.*` records of one entry's PAX headers. The segments of a 0.0 map (one record
 * per offset and per length) count against the sparse budget rather than the PAX record budget:
 * a real file has thousands.
 */
export class PaxSparseRecords {
  private major: string | undefined;
  private minor: string | undefined;
  private name: Buffer | undefined;
  private realSize: string | undefined;
  private numBlocks: string | undefined;
  private map: string | undefined;
  /** 0.0's records as they came: offset, length, offset, … */
  private readonly listed: string[] = [];

  /** Whether the records say the entry is sparse. */
  get present(): boolean {
    return this.major !== undefined || this.realSize !== undefined || this.map !== undefined || this.listed.length > 0;
  }

  /**
   * Takes a record if it is one of these: 'segment' for 0.0's offset and length records (the
   * caller does not count them as PAX records), 'field' for the others, undefined otherwise.
   */
  add(key: string, value: Buffer, limits: SparseLimits, offset: number): 'segment' | 'field' | undefined {
    if (!key.startsWith(SPARSE_KEY_PREFIX)) return undefined;
    const text = () => value.toString('latin1');
    switch (key.slice(SPARSE_KEY_PREFIX.length)) {
      case 'offset':
      case 'numbytes':
        // Two records a segment; bounded here, kept as text until the entry's header is read.
        if (this.listed.length >= 2 * limits.maxSparseSegmentsPerEntry) throw overBudget(limits, offset);
        if ((key.endsWith('offset') ? 0 : 1) !== this.listed.length % 2) throw new TarFormatError('sparse map: GNU.sparse.offset and GNU.sparse.numbytes records do not alternate', offset);
        this.listed.push(text());
        return 'segment';
      case 'major':
        this.major = text();
        return 'field';
      case 'minor':
        this.minor = text();
        return 'field';
      case 'name':
        this.name = Buffer.from(value);
        return 'field';
      case 'size':
      case 'realsize':
        this.realSize = text();
        return 'field';
      case 'numblocks':
        this.numBlocks = text();
        return 'field';
      case 'map':
        this.map = text();
        return 'field';
      default:
        return undefined;
    }
  }

  /**
   * The sparse file these records describe (`present` must be true). `storedBytes` is the
   * entry's data size in the archive; for 1.0 the map is read from the start of that data
   * through `reads`, which is left at the segments' data.
   */
  async read(storedBytes: number, reads: ArchiveReads, limits: SparseLimits, offset: number): Promise<SparseFile> {
    if (this.realSize === undefined) throw new TarFormatError('sparse file without GNU.sparse.size or GNU.sparse.realsize', offset);
    const realSize = decimal(this.realSize, 'real size', offset);
    const collector = new SegmentCollector(limits, offset);
    if (this.major !== undefined || this.minor !== undefined) {
      const version = `${this.major ?? ''}.${this.minor ?? ''}`;
      if (version === '1.0') {
        const mapBytes = await readDataMap(collector, storedBytes, reads, offset);
        return collector.finish(realSize, storedBytes - mapBytes, this.name, mapBytes);
      }
      if (version !== '0.0' && version !== '0.1') throw new TarFormatError(`unsupported sparse format ${printable(version, 32)}`, offset);
    }
    let numbers: number;
    if (this.map !== undefined) numbers = addListedPairs(collector, splitMap(this.map, collector, offset), storedBytes, offset);
    else if (this.listed.length > 0) numbers = addListedPairs(collector, this.listed, storedBytes, offset);
    else throw new TarFormatError('sparse file without a map', offset);
    if (this.numBlocks !== undefined && decimal(this.numBlocks, 'segment count', offset) !== numbers / 2) {
      throw new TarFormatError('sparse map: GNU.sparse.numblocks does not match the map', offset);
    }
    return collector.finish(realSize, storedBytes, this.name, 0);
  }
}

/** 0.1's `offset,length,…` as its fields, counted before they are split (a record may be 1 MiB of commas). */
function splitMap(map: string, collector: SegmentCollector, offset: number): string[] {
  if (map === '') throw new TarFormatError('sparse map: empty GNU.sparse.map', offset);
  let fields = 1;
  for (let at = map.indexOf(','); at !== -1; at = map.indexOf(',', at + 1)) fields++;
  collector.announce(Math.ceil(fields / 2));
  return map.split(',');
}

/** Adds (offset, length) pairs given as decimal text; returns how many numbers there were. */
function addListedPairs(collector: SegmentCollector, fields: readonly string[], storedBytes: number, offset: number): number {
  if (fields.length % 2 !== 0) throw new TarFormatError('sparse map: an offset without a length', offset);
  for (let i = 0; i < fields.length; i += 2) {
    collector.add(decimal(fields[i] ?? '', 'offset', offset), decimal(fields[i + 1] ?? '', 'length', offset), storedBytes);
  }
  return fields.length;
}

/**
 * PAX 1.0's map at the start of the data: the number of segments, then an offset and a length
 * per segment, each a decimal line; padded with anything to the next 512 bytes. Read a block at
 * a time, a number may span blocks. Returns the bytes it took (whole blocks).
 */
async function readDataMap(collector: SegmentCollector, storedBytes: number, reads: ArchiveReads, offset: number): Promise<number> {
  let consumed = 0;
  let block: Buffer = Buffer.alloc(0);
  let at = 0;
  /** The next decimal line, reading blocks as needed. */
  const nextNumber = async (what: string): Promise<number> => {
    let digits = '';
    for (;;) {
      if (at === block.length) {
        if (consumed + BLOCK > storedBytes) throw new TarFormatError('sparse map: longer than the entry\'s data', offset);
        const next = await reads.read(BLOCK);
        if (next === null || next.length < BLOCK) throw new TarFormatError('truncated sparse map', offset);
        block = next;
        at = 0;
        consumed += BLOCK;
      }
      const byte = block[at++] ?? 0;
      if (byte === 0x0a) return decimal(digits, what, offset);
      if (byte < 0x30 || byte > 0x39 || digits.length >= MAX_DIGITS) throw new TarFormatError(`sparse map: invalid ${what}`, offset);
      digits += String.fromCharCode(byte);
    }
  };
  const count = await nextNumber('segment count');
  collector.announce(count);
  const dataBytes = () => storedBytes - consumed;
  // The data's size is known only once the map's blocks are read: check the sum against an upper bound, then exactly.
  for (let i = 0; i < count; i++) collector.add(await nextNumber('offset'), await nextNumber('length'), dataBytes());
  return consumed;
}
