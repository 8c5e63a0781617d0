/**
 * The operator's settings the hostile tests expect to see named in refusals (issue 12: "fails
 * with a 422 naming the budget it broke", "400 at submit, naming the cap").
 *
 * PLACEHOLDERS: these names were written before the budgets existed; the lead wires the real
 * ones after merging the branches that add them (src/budget.ts's BudgetExceededError names the
 * setting as `(the budget <SETTING> is <limit>)`).
 */
export const BUDGETS = {
  layerEntries: 'BALER_MAX_LAYER_ENTRIES',
  buildEntries: 'BALER_MAX_BUILD_ENTRIES',
  entryPaxRecords: 'BALER_MAX_ENTRY_PAX_RECORDS',
  entryPaxBytes: 'BALER_MAX_ENTRY_PAX_BYTES',
  archivePaxRecords: 'BALER_MAX_ARCHIVE_PAX_RECORDS',
  archivePaxBytes: 'BALER_MAX_ARCHIVE_PAX_BYTES',
  archiveImages: 'BALER_MAX_ARCHIVE_IMAGES',
  archiveNames: 'BALER_MAX_ARCHIVE_NAMES',
  errorTextBytes: 'BALER_MAX_ERROR_TEXT_BYTES',
  buildLayerBytes: 'BALER_MAX_BUILD_LAYER_BYTES',
} as const;

/** Operator caps on VM steps (400 at submit over them). PLACEHOLDERS, as above. */
export const VM_CAPS = {
  diskMiB: 'BALER_MAX_VM_DISK_MIB',
  memoryMiB: 'BALER_MAX_VM_MEMORY_MIB',
  timeoutSeconds: 'BALER_MAX_VM_TIMEOUT_S',
  /** Bytes of the guest console a worker keeps. */
  consoleTailBytes: 'BALER_VM_CONSOLE_TAIL_BYTES',
} as const;

/**
 * The longest error text a tenant may be shown (BUDGETS.errorTextBytes; PLACEHOLDER value:
 * the default is not known yet). Errors naming thousands of images must stay under it.
 */
export const MAX_ERROR_TEXT_BYTES = 4096;

/**
 * How far concurrent requests may overshoot a quota: "at most one chunk" (issue 12).
 * PLACEHOLDER: the reserve/settle chunk size of the quota work.
 */
export const QUOTA_CHUNK_BYTES = 1024 * 1024;

/** The setting a BudgetExceededError message names, if any. */
export function budgetNamed(detail: string | undefined): string | undefined {
  return /the budget (BALER_[A-Z0-9_]+) is \d+/.exec(detail ?? '')?.[1];
}
