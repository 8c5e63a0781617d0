/**
 * A byte stream from one thread to another over a MessageChannel of its own, with flow
 * control: the reader grants credit for a few chunks at a time, so a fast writer never piles
 * up more than that in the reader's thread. Chunks are copied into fresh ArrayBuffers and
 * transferred (a Buffer may share its memory with others, so it is never transferred itself);
 * what is buffered is sent together, so small writes (tar headers) do not each cost a message.
 *
 * Written by hand: Node's transferable web streams do the same at about half the speed, and
 * have no way to batch.
 */
import { Readable } from 'node:stream';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { reviveError, serializeError, type SerializedError } from './error-codec.ts';

type ToReader = { chunk: ArrayBuffer } | { end: true } | { error: SerializedError };
type ToWriter = { credit: number } | { cancel: true };

/** Chunks the reader lets be in flight. */
const WINDOW = 4;

/** Sends `source` on a new channel; transfer the returned port to the reading thread. */
export function sendStream(source: Readable): MessagePort {
  const { port1: port, port2: remote } = new MessageChannel();
  let credit = 0;
  let scheduled = false;
  let finished = false;
  const finish = (message: ToReader | undefined) => {
    if (finished) return;
    finished = true;
    if (message) port.postMessage(message);
    port.close();
  };
  const pump = () => {
    scheduled = false;
    while (credit > 0 && !finished) {
      const chunk = source.read() as Buffer | null;
      if (chunk === null) return;
      credit--;
      const copy = new ArrayBuffer(chunk.length);
      new Uint8Array(copy).set(chunk);
      port.postMessage({ chunk: copy } satisfies ToReader, [copy]);
    }
  };
  // Waiting for the next turn lets a writer that writes many small pieces at once fill its buffer.
  const schedule = () => {
    if (scheduled) return;
    scheduled = true;
    setImmediate(pump);
  };
  source.on('readable', schedule);
  source.once('end', () => finish({ end: true }));
  source.once('error', (err) => finish({ error: serializeError(err) }));
  port.on('message', (message: ToWriter) => {
    if ('credit' in message) {
      credit += message.credit;
      schedule();
    } else {
      finish(undefined);
      source.destroy();
    }
  });
  // The reader's thread ended (or dropped the port): nobody reads any more.
  port.once('close', () => {
    finished = true;
    source.destroy();
  });
  return remote;
}

/** The bytes sent on `port` (by sendStream); destroying the stream stops the sender. */
export function receiveStream(port: MessagePort): Readable {
  let inFlight = 0;
  let done = false;
  const stream = new Readable({
    highWaterMark: 1 << 20,
    read() {
      const grant = WINDOW - inFlight;
      if (grant <= 0 || done) return;
      inFlight += grant;
      port.postMessage({ credit: grant } satisfies ToWriter);
    },
    destroy(err, callback) {
      if (!done) {
        done = true;
        port.postMessage({ cancel: true } satisfies ToWriter);
        port.close();
      }
      callback(err);
    },
  });
  port.on('message', (message: ToReader) => {
    if ('chunk' in message) {
      inFlight--;
      stream.push(Buffer.from(message.chunk));
    } else if ('end' in message) {
      done = true;
      port.close();
      stream.push(null);
    } else {
      done = true;
      port.close();
      stream.destroy(reviveError(message.error));
    }
  });
  port.once('close', () => {
    if (!done) {
      done = true;
      stream.destroy(new Error('the stream ended before its end: its sender went away'));
    }
  });
  return stream;
}
