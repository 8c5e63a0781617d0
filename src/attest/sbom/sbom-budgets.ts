import { BudgetExceededError } from '../../budget.ts';

/**
 * What reading an image's package databases may cost: the databases are the image's (so the
 * tenant's) bytes. Over a budget, BudgetExceededError names the setting (a 422 for the caller).
 * Plain numbers, so they cross to a worker thread.
 */
export interface SbomBudgets {
  /** Bytes of the package-database files one layer holds, all of them together (checked at each tar header, before reading). */
  maxDatabaseBytes: number;
  /** Packages (paragraphs read, installed or not) of one database file, and packages of the whole image. */
  maxPackages: number;
  /** Bytes of one field of a database (a dpkg field with its continuation lines, an apk line). */
  maxFieldBytes: number;
}

/** The environment variable that sets each budget (the plumbing loads them; SECURITY.md lists them). */
export const SBOM_BUDGET_SETTINGS: Readonly<Record<keyof SbomBudgets, string>> = {
  maxDatabaseBytes: 'BALER_SBOM_MAX_DATABASE_BYTES',
  maxPackages: 'BALER_SBOM_MAX_PACKAGES',
  maxFieldBytes: 'BALER_SBOM_MAX_FIELD_BYTES',
};

export const DEFAULT_SBOM_BUDGETS: Readonly<SbomBudgets> = {
  // A Debian desktop's status file is ~10 MB, Alpine's installed db with file lists a few MB.
  maxDatabaseBytes: 64 * 1024 ** 2,
  // A full Debian desktop has ~3,000 packages; the whole archive ~70,000.
  maxPackages: 100_000,
  // Long fields are dpkg's Description and Conffiles (a few KiB), apk's dependency lines.
  maxFieldBytes: 1024 ** 2,
};

/** The BudgetExceededError for going over `budget`. */
export function sbomOverBudget(budgets: SbomBudgets, budget: keyof SbomBudgets, what: string): BudgetExceededError {
  return new BudgetExceededError(SBOM_BUDGET_SETTINGS[budget], budgets[budget], what);
}
