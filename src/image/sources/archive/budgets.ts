import { BudgetExceededError } from '../../../budget.ts';

/**
 * What importing one base image archive (`fromImage: {blob}`) may cost: each budget bounds a
 * count the archive's author chooses, so that the work and memory of an import grow with the
 * budgets, not with the archive. Over one, the import fails with BudgetExceededError naming
 * the setting; the worker reads the settings (src/config.ts), SECURITY.md lists them.
 */
export interface ArchiveBudgets {
  /** Members of the archive's tar, directories included; the index of them is kept in memory. */
  maxMembers: number;
  /** Largest JSON member read whole and parsed (manifest.json, index.json, manifests, configs). */
  maxJsonBytes: number;
  /** Objects, arrays and keys in one JSON member: what its parse allocates beyond its bytes. */
  maxJsonNodes: number;
  /** Images one archive lists: manifest.json entries, index.json manifests, manifests of a nested index. */
  maxImages: number;
  /** Names one archive records: RepoTags, `repositories` tags and name annotations together. */
  maxNames: number;
  /** Longest error text an import reports (lists of choices name a handful, then "… and N more"). */
  maxErrorChars: number;
}

export const DEFAULT_ARCHIVE_BUDGETS: Readonly<ArchiveBudgets> = {
  // An image archive holds a few members per layer; anything near this is not one.
  maxMembers: 100_000,
  // containerd's limit for manifests and configs.
  maxJsonBytes: 20 * 1024 * 1024,
  // Some 36 MB of heap at worst (an empty object costs ~56 bytes, a key ~72); real members
  // hold a few per image, layer or history entry: thousands. With the members' index and the
  // JSON text itself, an import stays well within a build sandbox's 192 MiB heap.
  maxJsonNodes: 500_000,
  // `docker save` of a whole host or a multi-platform index stays far below.
  maxImages: 1000,
  maxNames: 10_000,
  maxErrorChars: 2000,
};

/** The environment variable that sets each budget. */
export const ARCHIVE_BUDGET_SETTINGS: Readonly<Record<keyof ArchiveBudgets, string>> = {
  maxMembers: 'BALER_ARCHIVE_MAX_MEMBERS',
  maxJsonBytes: 'BALER_ARCHIVE_MAX_JSON_BYTES',
  maxJsonNodes: 'BALER_ARCHIVE_MAX_JSON_NODES',
  maxImages: 'BALER_ARCHIVE_MAX_IMAGES',
  maxNames: 'BALER_ARCHIVE_MAX_NAMES',
  maxErrorChars: 'BALER_MAX_ERROR_CHARS',
};

/** The budgets in force: the defaults, overridden by what the caller gives. */
export function archiveBudgets(given: Partial<ArchiveBudgets> | undefined): ArchiveBudgets {
  const budgets = { ...DEFAULT_ARCHIVE_BUDGETS };
  for (const key of Object.keys(budgets) as Array<keyof ArchiveBudgets>) {
    const value = given?.[key];
    if (value !== undefined) budgets[key] = value;
  }
  return budgets;
}

/** The error for going over `budget`: `what` says what went over it. */
export function overBudget(budget: keyof ArchiveBudgets, limit: number, what: string): BudgetExceededError {
  return new BudgetExceededError(ARCHIVE_BUDGET_SETTINGS[budget], limit, what);
}
