import { BudgetExceededError } from '../budget.ts';
import { SPARSE_SEGMENTS_SETTING } from './tar-sparse.ts';

/** What reading one tar may keep and cost (indexTar): the reader's limits and the operator's budgets. */
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

/** The BudgetExceededError for going over `budget` at byte `offset` of the tar. */
export function tarOverBudget(limits: TarIndexLimits, budget: keyof typeof TAR_BUDGET_SETTINGS, what: string, offset: number): BudgetExceededError {
  return new BudgetExceededError(TAR_BUDGET_SETTINGS[budget], limits[budget], `${what} (at byte ${offset})`);
}
