/**
 * The operator's settings the hostile tests expect to see named in refusals (issue 12: "fails
 * with a 422 naming the budget it broke", "400 at submit, naming the cap"), as SECURITY.md
 * lists them; src/budget.ts's BudgetExceededError names one as `(the budget <SETTING> is <limit>)`.
 *
 * PLACEHOLDERS are marked: names of budgets not merged when these tests were written; the lead
 * wires the real ones when the branch that adds them is merged.
 */
export const BUDGETS = {
  /** PLACEHOLDER (tar reader budgets): entries of one layer. */
  layerEntries: 'BALER_MAX_LAYER_ENTRIES',
  /** PLACEHOLDER (tar reader budgets): entries of a build, base layers included. */
  buildEntries: 'BALER_MAX_BUILD_ENTRIES',
  /** PLACEHOLDER (tar reader budgets): PAX/xattr records of one entry. */
  entryPaxRecords: 'BALER_MAX_ENTRY_PAX_RECORDS',
  /** PLACEHOLDER (tar reader budgets): PAX/xattr bytes of one entry. */
  entryPaxBytes: 'BALER_MAX_ENTRY_PAX_BYTES',
  /** PLACEHOLDER (tar reader budgets): PAX/xattr records of an archive. */
  archivePaxRecords: 'BALER_MAX_ARCHIVE_PAX_RECORDS',
  /** PLACEHOLDER (tar reader budgets): PAX/xattr bytes of an archive. */
  archivePaxBytes: 'BALER_MAX_ARCHIVE_PAX_BYTES',
  archiveImages: 'BALER_ARCHIVE_MAX_IMAGES',
  archiveNames: 'BALER_ARCHIVE_MAX_NAMES',
} as const;

/** Operator caps on VM steps: over them, 400 at submit. */
export const VM_CAPS = {
  diskMiB: 'BALER_MAX_DISK_SIZE_MIB',
  memoryMiB: 'BALER_MAX_MEMORY_SIZE_MIB',
  timeoutSeconds: 'BALER_MAX_VM_TIMEOUT_S',
} as const;

/** Their defaults (SECURITY.md): the hostile tests run with them. */
export const VM_CAP_DEFAULTS = { diskMiB: 4096, memoryMiB: 4096, timeoutSeconds: 3600 } as const;

/**
 * The longest error text a tenant is shown for a hostile input: BALER_MAX_ERROR_CHARS (2000
 * characters, SECURITY.md) for an archive import's, with room for what the build adds around
 * it (`contents[0]: …`, `base image: …`). Errors that would name thousands of images or a
 * registry's megabyte of text must stay under it.
 */
export const MAX_ERROR_TEXT_CHARS = 2000 + 300;

/** The setting a BudgetExceededError message names, if any. */
export function budgetNamed(detail: string | undefined): string | undefined {
  return /the budget (BALER_[A-Z0-9_]+) is \d+/.exec(detail ?? '')?.[1];
}
