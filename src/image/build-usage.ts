import { BudgetExceededError } from '../budget.ts';
import { DEFAULT_TAR_LIMITS, TAR_BUDGET_SETTINGS, type TarIndexLimits } from './tar-limits.ts';

/**
 * The budgets of what one build's layers may hold, as the operator set them (BALER_* settings,
 * loaded in config.ts; SECURITY.md lists them). Plain numbers, so they cross to a worker thread.
 */
export interface LayerBudgets {
  /** Entries of one layer: tar entries read, and tree entries, implicit parent directories included. */
  maxLayerEntries: number;
  /** Entries of all the layer trees one build makes (base layers included), counted as they are added. */
  maxBuildEntries: number;
  /** Data and extended-attribute bytes of all the layers one build writes, counted before writing. */
  maxBuildLayerBytes: number;
  /** Bytes of all extension headers (PAX, GNU long names and links) of one tar. */
  maxTarExtensionBytes: number;
  maxPaxRecordsPerEntry: number;
  maxGlobalPaxRecords: number;
  maxXattrsPerEntry: number;
  maxXattrBytesPerEntry: number;
  /** Segments of one sparse file's map in a tar. */
  maxSparseSegmentsPerEntry: number;
}

/** The environment variable that sets each budget. */
export const LAYER_BUDGET_SETTINGS: Readonly<Record<keyof LayerBudgets, string>> = {
  maxLayerEntries: TAR_BUDGET_SETTINGS.maxEntries,
  maxBuildEntries: 'BALER_MAX_BUILD_ENTRIES',
  maxBuildLayerBytes: 'BALER_MAX_BUILD_LAYER_BYTES',
  maxTarExtensionBytes: TAR_BUDGET_SETTINGS.maxExtensionBytesTotal,
  maxPaxRecordsPerEntry: TAR_BUDGET_SETTINGS.maxPaxRecordsPerEntry,
  maxGlobalPaxRecords: TAR_BUDGET_SETTINGS.maxGlobalPaxRecords,
  maxXattrsPerEntry: TAR_BUDGET_SETTINGS.maxXattrsPerEntry,
  maxXattrBytesPerEntry: TAR_BUDGET_SETTINGS.maxXattrBytesPerEntry,
  maxSparseSegmentsPerEntry: TAR_BUDGET_SETTINGS.maxSparseSegmentsPerEntry,
};

export const DEFAULT_LAYER_BUDGETS: Readonly<LayerBudgets> = {
  maxLayerEntries: DEFAULT_TAR_LIMITS.maxEntries,
  // A tree keeps ~350 bytes of heap per entry (node, name, metadata): 400k entries take
  // ~140 MB of a build sandbox's 192 MiB (BALER_BUILD_HEAP_MIB); raise the two together.
  maxBuildEntries: 400_000,
  maxBuildLayerBytes: 32 * 1024 ** 3,
  maxTarExtensionBytes: DEFAULT_TAR_LIMITS.maxExtensionBytesTotal,
  maxPaxRecordsPerEntry: DEFAULT_TAR_LIMITS.maxPaxRecordsPerEntry,
  maxGlobalPaxRecords: DEFAULT_TAR_LIMITS.maxGlobalPaxRecords,
  maxXattrsPerEntry: DEFAULT_TAR_LIMITS.maxXattrsPerEntry,
  maxXattrBytesPerEntry: DEFAULT_TAR_LIMITS.maxXattrBytesPerEntry,
  maxSparseSegmentsPerEntry: DEFAULT_TAR_LIMITS.maxSparseSegmentsPerEntry,
};

/**
 * What one build has spent of its budgets so far: every tree it makes (contents, base layers
 * in overlay form, VM output) adds its entries here, and every layer it writes its bytes, so
 * that no number of contents entries, layers or steps multiplies what one budget allows.
 */
export class BuildUsage {
  private entries = 0;
  private layerBytes = 0;

  constructor(readonly budgets: LayerBudgets = DEFAULT_LAYER_BUDGETS) {}

  /** The limits for reading one of the build's tars (a layer, contents, a VM's output). */
  get tarLimits(): Partial<TarIndexLimits> {
    const b = this.budgets;
    return {
      maxEntries: b.maxLayerEntries,
      maxEntriesSetting: TAR_BUDGET_SETTINGS.maxEntries,
      maxExtensionBytesTotal: b.maxTarExtensionBytes,
      maxPaxRecordsPerEntry: b.maxPaxRecordsPerEntry,
      maxGlobalPaxRecords: b.maxGlobalPaxRecords,
      maxXattrsPerEntry: b.maxXattrsPerEntry,
      maxXattrBytesPerEntry: b.maxXattrBytesPerEntry,
      maxSparseSegmentsPerEntry: b.maxSparseSegmentsPerEntry,
    };
  }

  addEntries(count: number): void {
    this.entries += count;
    const limit = this.budgets.maxBuildEntries;
    if (this.entries > limit) {
      throw new BudgetExceededError(LAYER_BUDGET_SETTINGS.maxBuildEntries, limit, `more than ${limit} entries in the build's layers (base layers included)`);
    }
  }

  /** Before a layer of `bytes` (data and extended attributes) is written: `what` names it in the error. */
  addLayerBytes(bytes: number, what: string): void {
    this.layerBytes += bytes;
    const limit = this.budgets.maxBuildLayerBytes;
    if (this.layerBytes > limit) {
      throw new BudgetExceededError(LAYER_BUDGET_SETTINGS.maxBuildLayerBytes, limit, `${what}: the build's layers would hold more than ${limit} bytes (${this.layerBytes} so far)`);
    }
  }
}
