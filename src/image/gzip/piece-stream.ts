import { availableParallelism } from 'node:os';
import { Readable } from 'node:stream';
import { crc32 } from './crc32.ts';
import { BLOCK_SIZE, checkLevel, deflateBlock, DICTIONARY_SIZE } from './deflate-block.ts';

export interface DeflatePieceInfo {
  /** CRC-32 of the uncompressed input. */
  crc32: number;
  /** Bytes of uncompressed input. */
  rawLength: number;
  /** Bytes of the deflate piece (without any framing around it). */
  compressedLength: number;
}

export interface ParallelDeflateOptions {
  /** zlib level 0..9, default 6. Part of the output: another level gives other bytes. */
  level?: number;
  /** Blocks compressed at once on the threadpool (default: see `defaultConcurrency`). Never changes the bytes. */
  concurrency?: number;
}

/** The most blocks a caller may ask to have in flight. */
export const MAX_CONCURRENCY = 64;

/**
 * Blocks deflated at once by default: one more than the cores, so that while the main thread
 * turns a finished block around, a queued one keeps each core busy (measured on 2 cores: 2 jobs
 * keep only ~1.55 cores busy, 3 keep ~1.8); and at most the libuv threadpool's size minus one
 * (4 unless UV_THREADPOOL_SIZE says otherwise), so that one thread stays free for the file reads
 * that usually feed us. On 2 cores with the default threadpool: 3.
 */
export function defaultConcurrency(): number {
  const pool = Number(process.env.UV_THREADPOOL_SIZE) || 4;
  return Math.max(1, Math.min(availableParallelism() + 1, pool - 1, MAX_CONCURRENCY));
}

function checkConcurrency(concurrency: number | undefined): number {
  if (concurrency === undefined) return defaultConcurrency();
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > MAX_CONCURRENCY) {
    throw new RangeError(`concurrency must be an integer 1..${MAX_CONCURRENCY}, got ${concurrency}`);
  }
  return concurrency;
}

/**
 * Blocks held at once (read, being deflated, or deflated and waiting their turn): more than
 * the number being deflated, so a slow block holds no core idle while later ones wait to be
 * emitted in order, and the next blocks are read while the current ones compress.
 */
export function windowFor(concurrency: number): number {
  return 2 * concurrency + 2;
}

/** Bytes to put before the piece, and after it once its info is known (gzip's header and trailer). */
export interface PieceFrame {
  prefix?: Buffer;
  suffix?: (info: DeflatePieceInfo) => Buffer;
}

function toBuffer(chunk: unknown): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  if (typeof chunk === 'string') return Buffer.from(chunk, 'utf8');
  throw new TypeError(`input chunks must be bytes or strings, got ${typeof chunk}`);
}

/** Cuts a stream of chunks into blocks of exactly BLOCK_SIZE bytes: whole blocks of a large chunk are views of it, others are copied together. */
class Blocker {
  private partial: Buffer | undefined;
  private filled = 0;

  *add(chunk: Buffer): Generator<Buffer> {
    let offset = 0;
    if (this.filled > 0) {
      offset = this.fill(chunk, 0);
      if (this.filled === BLOCK_SIZE) yield this.take();
    }
    while (chunk.length - offset >= BLOCK_SIZE) {
      yield chunk.subarray(offset, offset + BLOCK_SIZE);
      offset += BLOCK_SIZE;
    }
    if (offset < chunk.length) this.fill(chunk, offset);
  }

  /** The last, short block (empty when the input was a whole number of blocks). */
  rest(): Buffer {
    return this.filled > 0 ? this.take() : Buffer.alloc(0);
  }

  private fill(chunk: Buffer, offset: number): number {
    this.partial ??= Buffer.allocUnsafe(BLOCK_SIZE);
    const copied = chunk.copy(this.partial, this.filled, offset, Math.min(chunk.length, offset + BLOCK_SIZE - this.filled));
    this.filled += copied;
    return offset + copied;
  }

  private take(): Buffer {
    const block = (this.partial as Buffer).subarray(0, this.filled);
    this.partial = undefined;
    this.filled = 0;
    return block;
  }
}

const noop = (): void => {};

function prematureClose(): Error {
  return Object.assign(new Error('the deflate output stream was destroyed before the end of its input'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
}

/**
 * The engine behind deflatePiece and parallelGzip: reads `input`, cuts it into blocks, deflates
 * up to `concurrency` blocks at once on the threadpool (each with the previous block's last
 * 32 KiB as dictionary), and emits their outputs in order, between the frame's prefix and
 * suffix. Output bytes depend only on the input bytes and the level.
 *
 * Memory: at most windowFor(concurrency) = 2 × concurrency + 2 blocks held (input + output
 * each, ≤ 256 KiB a block), `concurrency` zlib states (~300 KiB each), one partial block, and
 * about one block of output waiting for the reader: ~2.5 MB at the default concurrency 3,
 * whatever the input size. Input is read only when the window has room and the reader has
 * taken what was pushed (backpressure both ways). Starts reading on the first read.
 *
 * An input error destroys the output with that very error; destroying the output destroys the
 * input. `info` settles before the output ends (rejected on any failure).
 */
export function pieceStream(input: Readable, options: ParallelDeflateOptions = {}, frame: PieceFrame = {}): { stream: Readable; info: Promise<DeflatePieceInfo> } {
  const level = checkLevel(options.level);
  const concurrency = checkConcurrency(options.concurrency);
  const windowSize = windowFor(concurrency);

  let resolveInfo: (info: DeflatePieceInfo) => void = noop;
  let rejectInfo: (err: Error) => void = noop;
  const info = new Promise<DeflatePieceInfo>((resolve, reject) => {
    resolveInfo = resolve;
    rejectInfo = reject;
  });
  info.catch(noop); // callers that only read the stream see the error there

  let started = false;
  let finished = false;
  let wake: (() => void) | undefined;
  /** Set by each read(): the reader wants more (so a push that returned false need not wait). */
  let wanted = false;
  const wakeUp = (): void => {
    wanted = true;
    const w = wake;
    wake = undefined;
    w?.();
  };

  const stream = new Readable({
    highWaterMark: BLOCK_SIZE,
    read() {
      if (!started) {
        started = true;
        drive().then(
          () => {
            finished = true;
          },
          (err: unknown) => {
            finished = true;
            stream.destroy(err instanceof Error ? err : new Error(String(err)));
          },
        );
      } else {
        wakeUp();
      }
    },
    destroy(err, callback) {
      rejectInfo(err ?? prematureClose());
      if (!finished && !input.destroyed) input.destroy();
      wakeUp();
      callback(err);
    },
  });

  /** Pushes bytes, then waits until the reader wants more. False once the output is gone. */
  async function emit(bytes: Buffer): Promise<boolean> {
    if (stream.destroyed) return false;
    if (bytes.length === 0) return true;
    wanted = false;
    if (!stream.push(bytes) && !wanted) await new Promise<void>((resolve) => (wake = resolve));
    return !stream.destroyed;
  }

  async function drive(): Promise<void> {
    const blocker = new Blocker();
    /** Blocks read and not yet emitted, in order; the first `concurrency` unfinished ones are being deflated. */
    const window: Array<{ block: Buffer; dictionary: Buffer | undefined; job?: Promise<Buffer> }> = [];
    let running = 0;
    let dictionary: Buffer | undefined;
    let crc = 0;
    let rawLength = 0;
    let compressedLength = 0;

    /** Starts the oldest waiting blocks while fewer than `concurrency` are being deflated. */
    const startWaiting = (): void => {
      for (const entry of window) {
        if (running >= concurrency || stream.destroyed) return;
        if (entry.job) continue;
        running++;
        entry.job = deflateBlock(entry.block, entry.dictionary, level).finally(() => {
          running--;
          startWaiting();
        });
        entry.job.catch(noop); // awaited in order below; an abort may leave it unawaited
      }
    };

    /** Emits the oldest block's output; false once the output is gone. */
    const emitOldest = async (): Promise<boolean> => {
      const entry = window[0] as (typeof window)[number];
      const out = await (entry.job as Promise<Buffer>); // blocks start in order, so the oldest has started
      window.shift();
      compressedLength += out.length;
      return emit(out);
    };

    /** Queues a block (started at once if a slot is free) and waits until the window has room; false once the output is gone. */
    const submit = async (block: Buffer): Promise<boolean> => {
      crc = crc32(block, crc);
      rawLength += block.length;
      window.push({ block, dictionary });
      dictionary = block.length >= DICTIONARY_SIZE ? block.subarray(block.length - DICTIONARY_SIZE) : undefined;
      startWaiting();
      while (window.length >= windowSize) if (!(await emitOldest())) return false;
      return true;
    };

    if (frame.prefix && !(await emit(frame.prefix))) return;
    for await (const chunk of input) {
      for (const block of blocker.add(toBuffer(chunk))) if (!(await submit(block))) return;
      if (stream.destroyed) return;
    }
    if (stream.destroyed) return;
    const last = blocker.rest();
    if (last.length > 0 && !(await submit(last))) return;
    while (window.length > 0) if (!(await emitOldest())) return;

    const result: DeflatePieceInfo = { crc32: crc, rawLength, compressedLength };
    resolveInfo(result);
    if (frame.suffix && !(await emit(frame.suffix(result)))) return;
    finished = true;
    stream.push(null);
  }

  return { stream, info };
}
