/**
 * Calls and notifications between the worker's main thread and a build's sandbox thread, over
 * one MessagePort (or a Worker, which has the same three methods). Both sides are alike: each
 * may call methods the other handles. A call's error comes back as the same error class
 * (error-codec.ts); a notification has no answer and keeps its order relative to the others.
 */
import type { Transferable } from 'node:worker_threads';
import { reviveError, serializeError, type SerializedError } from './error-codec.ts';

/** What a Worker and a MessagePort both are. */
export interface MessageEnd {
  postMessage(value: unknown, transferList?: readonly Transferable[]): void;
  on(event: 'message', listener: (value: unknown) => void): unknown;
  off(event: 'message', listener: (value: unknown) => void): unknown;
}

type Message =
  | { rpc: 'call'; id: number; method: string; args: unknown[] }
  | { rpc: 'result'; id: number; value: unknown }
  | { rpc: 'error'; id: number; error: SerializedError }
  | { rpc: 'note'; method: string; args: unknown[] };

/** A value to send with objects whose ownership moves to the other thread (MessagePorts). */
export class Transfer<T> {
  constructor(
    readonly value: T,
    readonly transferList: readonly Transferable[],
  ) {}
}

type Handler = (...args: never[]) => unknown;

export class RpcEndpoint {
  private nextId = 0;
  private readonly pending = new Map<number, { resolve: (value: unknown) => void; reject: (err: Error) => void }>();
  private readonly handlers = new Map<string, Handler>();
  private readonly listeners = new Map<string, Handler>();
  private closedWith: Error | undefined;
  private readonly onMessage = (message: unknown) => this.receive(message as Message);

  constructor(private readonly end: MessageEnd) {
    end.on('message', this.onMessage);
  }

  /** Answer calls of `method` (a thrown or rejected error goes back to the caller). */
  handle<A extends unknown[], R>(method: string, handler: (...args: A) => R | Promise<R> | Transfer<R> | Promise<Transfer<R>>): void {
    this.handlers.set(method, handler as Handler);
  }

  /** Be told of notifications of `method`. */
  listen<A extends unknown[]>(method: string, listener: (...args: A) => void): void {
    this.listeners.set(method, listener as Handler);
  }

  call<R>(method: string, args: unknown[], transferList: readonly Transferable[] = []): Promise<R> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    const id = this.nextId++;
    return new Promise<R>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      this.end.postMessage({ rpc: 'call', id, method, args } satisfies Message, transferList);
    });
  }

  notify(method: string, args: unknown[]): void {
    if (!this.closedWith) this.end.postMessage({ rpc: 'note', method, args } satisfies Message);
  }

  /** No more calls either way: those waiting for an answer fail with `reason`. */
  close(reason: Error): void {
    if (this.closedWith) return;
    this.closedWith = reason;
    this.end.off('message', this.onMessage);
    for (const { reject } of this.pending.values()) reject(reason);
    this.pending.clear();
  }

  private receive(message: Message): void {
    if (typeof message !== 'object' || message === null || !('rpc' in message)) return;
    switch (message.rpc) {
      case 'call':
        void this.answer(message.id, message.method, message.args);
        return;
      case 'result':
      case 'error': {
        const waiting = this.pending.get(message.id);
        if (!waiting) return;
        this.pending.delete(message.id);
        if (message.rpc === 'result') waiting.resolve(message.value);
        else waiting.reject(reviveError(message.error));
        return;
      }
      case 'note':
        (this.listeners.get(message.method) as ((...args: unknown[]) => void) | undefined)?.(...message.args);
        return;
    }
  }

  private async answer(id: number, method: string, args: unknown[]): Promise<void> {
    try {
      const handler = this.handlers.get(method) as ((...args: unknown[]) => unknown) | undefined;
      if (!handler) throw new Error(`no handler for '${method}'`);
      const answer = await handler(...args);
      if (this.closedWith) return;
      if (answer instanceof Transfer) this.end.postMessage({ rpc: 'result', id, value: answer.value } satisfies Message, answer.transferList);
      else this.end.postMessage({ rpc: 'result', id, value: answer } satisfies Message);
    } catch (err) {
      if (!this.closedWith) this.end.postMessage({ rpc: 'error', id, error: serializeError(err) } satisfies Message);
    }
  }
}
