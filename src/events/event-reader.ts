import type { Redis } from 'ioredis';
import { isFinalEvent, type BuildEvent } from './build-event.ts';
import { eventsKey, parseEntry } from './event-stream.ts';

/** Entries read per XRANGE page (history) and per stream per XREAD (live). */
const PAGE = 200;
/**
 * The shared XREAD blocks at most this long. A watch added meanwhile interrupts it (CLIENT
 * UNBLOCK), so this only bounds how long a missed interruption can delay a new watch.
 */
const BLOCK_MS = 5_000;
/** After a failed read (Redis away), wait this long before the next. */
const RETRY_MS = 1_000;

type StreamEntry = [id: string, fields: string[]];

/** Stream ids (`ms-seq`) in order. */
function compareIds(a: string, b: string): number {
  const [am = 0n, as = 0n] = a.split('-').map(BigInt);
  const [bm = 0n, bs = 0n] = b.split('-').map(BigInt);
  return am === bm ? Number(as - bs) : am < bm ? -1 : 1;
}

/** One open watch of one build past its history: events arrive here from the shared read. */
class LiveWatch {
  private readonly queue: BuildEvent[] = [];
  private wake?: () => void;
  private ended = false;

  constructor(public cursor: string) {}

  deliver(events: BuildEvent[]): void {
    for (const event of events) {
      if (compareIds(event.id, this.cursor) <= 0) continue;
      this.queue.push(event);
      this.cursor = event.id;
    }
    this.wake?.();
  }

  end(): void {
    this.ended = true;
    this.wake?.();
  }

  /** The next event, or undefined once the watch ended (aborted, or the reader closed). */
  async next(): Promise<BuildEvent | undefined> {
    while (this.queue.length === 0 && !this.ended) await new Promise<void>((resolve) => (this.wake = resolve));
    this.wake = undefined;
    return this.queue.shift();
  }
}

/**
 * Reads builds' event streams for the API: a build's history with XRANGE pages on the API's
 * ordinary connection (never blocking it), then its new events from ONE blocking connection
 * shared by every watch of this process: a single `XREAD BLOCK` over all watched streams, each
 * from the oldest position any of its watches needs. Hundreds of watchers thus cost one Redis
 * connection and one blocked command, not one each; a new watch interrupts the blocked read
 * (CLIENT UNBLOCK from the ordinary connection) so the next read includes it.
 */
export class BuildEventReader {
  private readonly watches = new Map<string, Set<LiveWatch>>();
  /** Where the read in flight started, per stream; undefined while none is. */
  private reading?: Map<string, string>;
  private readerId?: number;
  private needsRestart = false;
  private interrupting = false;
  private idle?: () => void;
  private closed = false;
  private readonly loop: Promise<void>;

  constructor(
    private readonly redis: Redis,
    /** Dedicated to this reader: it spends its life blocked in XREAD. */
    private readonly blocking: Redis,
    private readonly logger: { warn(details: object, message: string): void },
  ) {
    // A new connection after a reconnect has a new client id.
    blocking.on('close', () => (this.readerId = undefined));
    this.loop = this.run();
  }

  /** Open watches (SSE or NDJSON responses following a build live). */
  get size(): number {
    let n = 0;
    for (const set of this.watches.values()) n += set.size;
    return n;
  }

  /**
   * A build's events after `after` (a stream id; all when undefined): its history, then new
   * events as they come, ending after the final state (or when `signal` aborts, or the reader
   * closes). `ended`: the build has ended and its stream holds its final state, so the history
   * is all there is; a reader resuming after that state gets nothing, and the end.
   */
  async *watch(buildId: string, after: string | undefined, signal: AbortSignal, ended = false): AsyncGenerator<BuildEvent> {
    const key = eventsKey(buildId);
    let cursor = after ?? '0-0';
    for (;;) {
      const page = (await this.redis.xrange(key, `(${cursor}`, '+', 'COUNT', PAGE)) as StreamEntry[];
      for (const entry of page) {
        const event = parseEntry(entry);
        cursor = event.id;
        yield event;
        if (isFinalEvent(event) || signal.aborted) return;
      }
      if (page.length < PAGE) break;
    }

    if (ended || this.closed || signal.aborted) return;
    const live = new LiveWatch(cursor);
    const onAbort = () => live.end();
    signal.addEventListener('abort', onAbort, { once: true });
    this.add(key, live);
    try {
      for (;;) {
        const event = await live.next();
        if (!event) return;
        yield event;
        if (isFinalEvent(event)) return;
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      this.remove(key, live);
    }
  }

  /** End every watch and stop reading. */
  async close(): Promise<void> {
    this.closed = true;
    for (const set of this.watches.values()) for (const live of set) live.end();
    this.watches.clear();
    this.idle?.();
    this.blocking.disconnect();
    await this.loop;
  }

  private add(key: string, live: LiveWatch): void {
    let set = this.watches.get(key);
    if (!set) this.watches.set(key, (set = new Set()));
    set.add(live);
    const from = this.reading?.get(key);
    if (this.reading && from !== undefined && compareIds(from, live.cursor) <= 0) return;
    // The read in flight does not cover this watch (or none is in flight): restart it.
    this.needsRestart = true;
    this.idle?.();
    if (this.reading) void this.interrupt();
  }

  private remove(key: string, live: LiveWatch): void {
    const set = this.watches.get(key);
    set?.delete(live);
    // The read in flight may still name the stream; its entries then go nowhere.
    if (set?.size === 0) this.watches.delete(key);
  }

  /**
   * Unblock the read in flight so that the next one includes new watches. The XREAD may not
   * have reached Redis yet (UNBLOCK then finds nothing blocked): try again shortly, until the
   * read in flight is one that started after the watch was added.
   */
  private async interrupt(): Promise<void> {
    if (this.interrupting) return;
    this.interrupting = true;
    try {
      while (this.needsRestart && this.reading && !this.closed) {
        const id = this.readerId;
        const unblocked = id === undefined ? 0 : await this.redis.client('UNBLOCK', id).catch(() => 0);
        if (unblocked === 1) break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    } finally {
      this.interrupting = false;
    }
  }

  private async run(): Promise<void> {
    while (!this.closed) {
      if (this.watches.size === 0) {
        await new Promise<void>((resolve) => (this.idle = resolve));
        this.idle = undefined;
        continue;
      }
      // Each stream from the oldest position one of its watches is at.
      const from = new Map<string, string>();
      for (const [key, set] of this.watches) {
        for (const live of set) {
          const at = from.get(key);
          if (at === undefined || compareIds(live.cursor, at) < 0) from.set(key, live.cursor);
        }
      }
      this.needsRestart = false;
      this.reading = from;
      let reply: Array<[key: string, entries: StreamEntry[]]> | null;
      try {
        this.readerId ??= await this.blocking.client('ID');
        reply = (await this.blocking.xread('COUNT', PAGE, 'BLOCK', BLOCK_MS, 'STREAMS', ...from.keys(), ...from.values())) as typeof reply;
      } catch (err) {
        this.reading = undefined;
        if (this.closed) break;
        this.logger.warn({ err }, 'reading build events failed; retrying');
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
        continue;
      }
      this.reading = undefined;
      for (const [key, entries] of reply ?? []) {
        const events = entries.map(parseEntry);
        const start = from.get(key) ?? '0-0';
        for (const live of this.watches.get(key) ?? []) {
          // A watch added behind where this read started would skip the events between its
          // position and the read's start: it waits for the next read, which starts at it.
          if (compareIds(live.cursor, start) < 0) continue;
          live.deliver(events);
        }
      }
    }
  }
}
