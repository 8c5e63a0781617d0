/**
 * Cleanup on every exit path of a benchmark: each resource registers how to remove it while it
 * exists; Ctrl-C (or SIGTERM/SIGHUP) runs what is registered, newest first (a service may still
 * read files of the work dir it was started in), then exits with 130.
 */
export class Cleanups {
  private readonly steps = new Set<() => Promise<void>>();
  private interruptedBy: string | undefined;

  constructor(
    private readonly report: (text: string) => void,
    /** Runs first on an interruption or runAll() (e.g. stopping load generators). */
    private readonly first: () => void = () => {},
  ) {
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.on(signal, () => {
        if (this.interruptedBy) return;
        this.interruptedBy = signal;
        report(`${signal}: cleaning up`);
        void this.runAll().then(() => process.exit(130));
      });
    }
  }

  get interrupted(): boolean {
    return this.interruptedBy !== undefined;
  }

  /** Throws once a signal arrived, so a long measurement loop stops at its next round. */
  checkInterrupted(): void {
    if (this.interrupted) throw new Error('interrupted');
  }

  /** Keep `cleanup` registered until it has run; it runs when `body` ends, however it ends. */
  async with<T>(cleanup: () => Promise<void>, body: () => Promise<T>): Promise<T> {
    this.steps.add(cleanup);
    try {
      return await body();
    } finally {
      this.steps.delete(cleanup);
      await cleanup();
    }
  }

  /** Register `cleanup` for the rest of the run (runAll() or an interruption). */
  add(cleanup: () => Promise<void>): void {
    this.steps.add(cleanup);
  }

  /** Run every registered cleanup, newest first; a failing one is reported and the rest still run. */
  async runAll(): Promise<void> {
    this.first();
    for (const step of [...this.steps].reverse()) {
      try {
        await step();
      } catch (err) {
        this.report(`cleanup step failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    this.steps.clear();
  }
}
