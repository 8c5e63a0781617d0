/**
 * A build's log as its scripts write it: appended in order, one append at a time, and what
 * comes in meanwhile joins the next append. The log keeps no more than its cap, so past it
 * nothing more is held either: a script flooding its output costs bounded memory, however
 * slowly Redis takes it.
 */
import type { BuildLogs } from './build-log.ts';

export class BuildLogWriter {
  /** Characters written and kept so far (at most the cap + 1: one over makes the log say it was truncated). */
  #kept = 0;
  #pending = '';
  #writing: Promise<void> | undefined;

  constructor(
    private readonly logs: Pick<BuildLogs, 'append' | 'maxBytes'>,
    private readonly buildId: string,
    private readonly onError: (err: unknown) => void,
  ) {}

  write(text: string): void {
    // Characters, not bytes: a character is at least a byte, so this keeps at least what the log can.
    const room = this.logs.maxBytes + 1 - this.#kept;
    if (room <= 0 || text === '') return;
    const kept = text.length > room ? text.slice(0, room) : text;
    this.#kept += kept.length;
    this.#pending += kept;
    this.#writing ??= this.#drain();
  }

  /** Resolves once everything written so far is in the log (or failed to get there). */
  async flush(): Promise<void> {
    while (this.#writing) await this.#writing;
  }

  async #drain(): Promise<void> {
    while (this.#pending !== '') {
      const text = this.#pending;
      this.#pending = '';
      await this.logs.append(this.buildId, text).catch(this.onError);
    }
    this.#writing = undefined;
  }
}
