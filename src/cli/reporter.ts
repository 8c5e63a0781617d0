/**
 * What `baler build` shows while it works: progress bars on a terminal (cli-progress), plain
 * lines otherwise. Everything goes to stderr; stdout is kept for the build id and `--json`.
 */
import { MultiBar, Presets, type SingleBar } from 'cli-progress';
import type { StepEvent, ProgressEvent } from './build-events.ts';

export interface ByteTask {
  /** `n` more bytes done. */
  advance(n: number): void;
  /** Finished; `note` says how (e.g. the digest, or "already uploaded"). */
  done(note: string): void;
}

export interface Reporter {
  /** A transfer of `total` bytes (undefined: unknown length). */
  bytes(label: string, total: number | undefined): ByteTask;
  /** A one-off line (submitted, state changes, results). */
  line(text: string): void;
  /** Build log text, as it arrives. */
  log(text: string): void;
  step(event: StepEvent): void;
  progress(event: ProgressEvent): void;
  /** Leave the terminal as a normal one (bars stopped). */
  close(): void;
}

export function createReporter(stream: NodeJS.WriteStream, plain: boolean): Reporter {
  return stream.isTTY && !plain ? new TtyReporter(stream) : new PlainReporter(stream);
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

export function formatSeconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

function stepName(event: StepEvent): string {
  const index = event.index === undefined ? '' : `${event.index + 1} `;
  // Printable only: the platform comes from the service's event (a multi-platform build's steps alternate).
  const platform = event.platform && /^[a-z0-9/]{1,64}$/.test(event.platform) ? ` (${event.platform})` : '';
  return `step ${index}${event.name}${platform}`;
}

function stepLine(event: StepEvent): string {
  const took = event.durationMs === undefined ? '' : ` in ${formatSeconds(event.durationMs)}`;
  return `${stepName(event)}: ${event.phase}${took}`;
}

class PlainReporter implements Reporter {
  private logEndsLine = true;
  constructor(private readonly out: NodeJS.WriteStream) {}

  private write(text: string): void {
    if (!this.logEndsLine) this.out.write('\n');
    this.logEndsLine = true;
    this.out.write(`${text}\n`);
  }

  bytes(label: string, total: number | undefined): ByteTask {
    this.write(`${label}: ${total === undefined ? 'started' : formatBytes(total)}`);
    let done = 0;
    return {
      advance: (n) => void (done += n),
      done: (note) => this.write(`${label}: done, ${formatBytes(done)}${note ? ` (${note})` : ''}`),
    };
  }

  line(text: string): void {
    this.write(text);
  }

  log(text: string): void {
    if (!text) return;
    this.out.write(text);
    this.logEndsLine = text.endsWith('\n');
  }

  step(event: StepEvent): void {
    this.write(stepLine(event));
  }

  progress(): void {
    // Byte counts are for watching; in a log the steps' lines and durations say enough.
  }

  close(): void {
    if (!this.logEndsLine) this.out.write('\n');
    this.logEndsLine = true;
  }
}

class TtyReporter implements Reporter {
  private readonly bars: MultiBar;
  private stepBar: SingleBar | undefined;
  private stepsBegun = 0;
  private stepsDone = 0;
  private readonly progressBars = new Map<string, SingleBar>();
  private pendingLog = '';
  private closed = false;

  constructor(out: NodeJS.WriteStream) {
    this.bars = new MultiBar(
      {
        stream: out,
        format: '{label} |{bar}| {percentage}% {shown}',
        barsize: 30,
        hideCursor: true,
        // Finished work is left as lines (see done()); bars of unfinished work go at the end.
        clearOnComplete: true,
        autopadding: true,
        fps: 10,
      },
      Presets.shades_classic,
    );
    process.once('SIGINT', this.interrupted);
  }

  /** Ctrl-C: give the terminal its cursor and line wrapping back, then exit as interrupted. */
  private readonly interrupted = () => {
    this.close();
    process.exit(130);
  };

  bytes(label: string, total: number | undefined): ByteTask {
    const bar = this.bars.create(total ?? 1, 0, { label, shown: shownBytes(0, total) });
    let done = 0;
    return {
      advance: (n) => {
        done += n;
        bar.update(total === undefined ? 0 : done, { shown: shownBytes(done, total) });
      },
      // A finished transfer leaves its bar for a line above the bars still running.
      done: (note) => {
        bar.setTotal(Math.max(done, 1));
        bar.update(Math.max(done, 1));
        this.bars.remove(bar);
        this.bars.log(`${label}: ${formatBytes(done)}${note ? ` (${note})` : ''}\n`);
      },
    };
  }

  line(text: string): void {
    this.bars.log(`${text}\n`);
  }

  log(text: string): void {
    // MultiBar.log wants whole lines; keep a partial line until its end arrives.
    const all = this.pendingLog + text;
    const end = all.lastIndexOf('\n');
    if (end < 0) {
      this.pendingLog = all;
      return;
    }
    this.bars.log(all.slice(0, end + 1));
    this.pendingLog = all.slice(end + 1);
  }

  step(event: StepEvent): void {
    if (event.phase !== 'started') this.bars.log(`${stepLine(event)}\n`);
    // The server does not say how many steps there will be: the bar is steps done of steps begun.
    if (event.phase === 'started' || event.phase === 'cached') this.stepsBegun++;
    if (event.phase !== 'started') this.stepsDone++;
    const shown = `${stepName(event)} ${event.phase}${event.durationMs === undefined ? '' : ` ${formatSeconds(event.durationMs)}`}`;
    if (!this.stepBar) this.stepBar = this.bars.create(this.stepsBegun, this.stepsDone, { label: 'build', shown });
    else {
      this.stepBar.setTotal(this.stepsBegun);
      this.stepBar.update(this.stepsDone, { shown });
    }
  }

  progress(event: ProgressEvent): void {
    let bar = this.progressBars.get(event.what);
    const total = event.bytesTotal ?? Math.max(event.bytesDone, 1);
    if (!bar) {
      bar = this.bars.create(total, 0, { label: event.what, shown: '' });
      this.progressBars.set(event.what, bar);
    }
    bar.setTotal(total);
    bar.update(event.bytesDone, { shown: shownBytes(event.bytesDone, event.bytesTotal) });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    process.removeListener('SIGINT', this.interrupted);
    if (this.pendingLog) this.bars.log(`${this.pendingLog}\n`);
    this.pendingLog = '';
    // stop() does not write lines still buffered by log(); one more redraw does.
    this.bars.update();
    this.bars.stop();
  }
}

function shownBytes(done: number, total: number | undefined): string {
  return total === undefined ? formatBytes(done) : `${formatBytes(done)}/${formatBytes(total)}`;
}
