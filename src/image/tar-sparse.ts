import { BudgetExceededError } from '../budget.ts';
import { printable } from './printable.ts';
import { TarFormatError } from './tar-fields.ts';

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

export const BLOCK = 512;
/** Digits of the largest number a map may hold (2^53 − 1 has 16). */
export const MAX_DIGITS = 16;

/**
 * Collects a map's segments as they are read, checking each against the ones before: O(1) per
 * segment, O(n) in all. Empty segments are dropped and touching ones joined.
 */
export class SegmentCollector {
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
    if (++this.counted > this.limits.maxSparseSegmentsPerEntry) throw sparseOverBudget(this.limits, this.offset);
  }

  /** Fails at once when a map announces more segments than the budget, before any is read. */
  announce(segments: number): void {
    if (segments > this.limits.maxSparseSegmentsPerEntry) throw sparseOverBudget(this.limits, this.offset);
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

export function sparseOverBudget(limits: SparseLimits, offset: number): BudgetExceededError {
  const limit = limits.maxSparseSegmentsPerEntry;
  return new BudgetExceededError(SPARSE_SEGMENTS_SETTING, limit, `a sparse file's map with more than ${limit} segments (at byte ${offset})`);
}

/** A map's decimal number (offset, length, count), a safe integer. */
export function decimal(text: string, what: string, offset: number): number {
  if (!/^\d+$/.test(text) || text.length > MAX_DIGITS) throw new TarFormatError(`sparse map: invalid ${what} '${printable(text, 32)}'`, offset);
  const value = Number(text);
  if (!Number.isSafeInteger(value)) throw new TarFormatError(`sparse map: ${what} too large`, offset);
  return value;
}
