/**
 * A budget is an operator's limit on what untrusted input may cost: entries, records, bytes,
 * images, time. Input over one fails with BudgetExceededError, which names the setting (the
 * environment variable) that sets it, so the tenant knows what was too much and the operator
 * what to raise. Budgets and their defaults are listed in SECURITY.md.
 */
export class BudgetExceededError extends Error {
  constructor(
    /** The setting that sets the budget, e.g. `BALER_MAX_LAYER_ENTRIES`. */
    readonly setting: string,
    readonly limit: number,
    /** What went over it, e.g. `contents[0]: more than 500000 entries in one layer`. */
    readonly overrun: string,
    opts?: { cause?: unknown },
  ) {
    super(`${overrun} (the budget ${setting} is ${limit})`, opts);
    this.name = 'BudgetExceededError';
  }

  /** The same overrun, said of where it happened (`contents[2]: …`); this error is its cause. */
  within(where: string): BudgetExceededError {
    return new BudgetExceededError(this.setting, this.limit, `${where}: ${this.overrun}`, { cause: this });
  }
}
