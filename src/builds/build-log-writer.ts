/**
 * A build's log as its scripts write it: appended in order, one append at a time, by line.
 * QEMU hands over a script's output a few bytes at a time (a serial port), so what comes is
 * held until its line ends, or for PARTIAL_LINE_MS when it does not (a prompt, a progress
 * bar): a `log` event is whole lines or a line's start, never a character at a time. What
 * comes in while an append waits on Redis joins the next append. The log keeps no more than
 * its cap, so past it nothing more is held either: a script flooding its output costs bounded
 * memory, however slowly Redis takes it.
 */
import type { BuildLogs } from './build-log.ts';

/** How long the start of a line waits for its end before it is appended as it is. */
export const PARTIAL_LINE_MS = 100;

export class BuildLogWriter {
  /** Characters written and kept so far (at most the cap + 1: one over makes the log say it was truncated). */
  #kept = 0;
  /** Written, not yet released: the end of the last line, unless the cap was reached. */
  #held = '';
  /** Released: whole lines (or a line's start held long enough), waiting for the next append. */
  #ready = '';
  #timer: NodeJS.Timeout | undefined;
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
    this.#held += kept;
    // At the cap nothing more comes: all of it goes now.
    const lineEnd = kept.length === room ? this.#held.length : this.#held.lastIndexOf('\n') + 1;
    if (lineEnd > 0) this.#release(lineEnd);
    if (this.#held !== '' && !this.#timer) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#release(this.#held.length);
      }, PARTIAL_LINE_MS);
      this.#timer.unref();
    }
  }

  /** Resolves once everything written so far is in the log (or failed to get there). */
  async flush(): Promise<void> {
    this.#release(this.#held.length);
    while (this.#writing) await this.#writing;
  }

  /** Moves the first `chars` held characters to the next append. */
  #release(chars: number): void {
    if (chars === 0) return;
    this.#ready += this.#held.slice(0, chars);
    this.#held = this.#held.slice(chars);
    if (this.#held === '' && this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    this.#writing ??= this.#drain();
  }

  async #drain(): Promise<void> {
    while (this.#ready !== '') {
      const text = this.#ready;
      this.#ready = '';
      await this.logs.append(this.buildId, text).catch(this.onError);
    }
    this.#writing = undefined;
  }
}
