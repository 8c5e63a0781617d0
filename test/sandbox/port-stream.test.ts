/**
 * Streams over a MessageChannel (both ends in this thread: the protocol is the same across
 * threads, and build-sandbox.test.ts runs it across them).
 */
import { randomBytes } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { expect, it } from 'vitest';
import { BudgetExceededError } from '../../src/budget.ts';
import { receiveStream, sendStream } from '../../src/sandbox/port-stream.ts';

it('carries every byte, in order, from many small writes and a few large ones', async () => {
  const pieces = [...Array.from({ length: 5000 }, (_, i) => Buffer.from(`header ${i}\n`)), randomBytes(3 << 20), randomBytes(1), randomBytes(700_000)];
  // As the tar writer writes: into a PassThrough, awaiting drain.
  const source = new PassThrough({ highWaterMark: 1 << 20 });
  void (async () => {
    for (const piece of pieces) if (!source.write(piece)) await new Promise((r) => source.once('drain', r));
    source.end();
  })();
  const received: Buffer[] = [];
  for await (const chunk of receiveStream(sendStream(source))) received.push(chunk as Buffer);
  expect(Buffer.concat(received).equals(Buffer.concat(pieces))).toBe(true);
  // Small writes buffered together go as one message, not one each.
  expect(received.length).toBeLessThan(200);
});

it('lets the writer run ahead of the reader by a few chunks only', async () => {
  let produced = 0;
  const source = new Readable({
    highWaterMark: 64 * 1024,
    read() {
      produced++;
      this.push(produced > 1000 ? null : Buffer.alloc(64 * 1024));
    },
  });
  const reader = receiveStream(sendStream(source));
  reader.pause();
  reader.read(0);
  await new Promise((r) => setTimeout(r, 300));
  // Nothing read: the sender stopped after its credit and its own buffer, far from 1000 chunks.
  expect(produced).toBeLessThan(100);
  reader.destroy();
});

it('stops the writer when the reader is destroyed', async () => {
  let destroyed = false;
  const source = new Readable({
    read() {
      this.push(Buffer.alloc(1024));
    },
    destroy(err, callback) {
      destroyed = true;
      callback(err);
    },
  });
  const reader = receiveStream(sendStream(source));
  for await (const _chunk of reader) break;
  await new Promise((r) => setTimeout(r, 100));
  expect(destroyed).toBe(true);
});

it("passes the writer's error on, of its own class", async () => {
  const source = new Readable({
    read() {
      this.destroy(new BudgetExceededError('BALER_X', 3, 'too many'));
    },
  });
  const err = await text(receiveStream(sendStream(source))).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(BudgetExceededError);
  expect((err as BudgetExceededError).setting).toBe('BALER_X');
});
