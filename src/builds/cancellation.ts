import type { Redis } from 'ioredis';

const CHANNEL = 'baler:cancel';

/** Tell whichever worker runs build `id` to stop it (any API replica, any worker host). */
export async function publishCancel(redis: Redis, id: string): Promise<void> {
  await redis.publish(CHANNEL, id);
}

/**
 * A worker's ear for cancellations: builds it runs register an AbortController, and a cancel
 * published for one of them aborts it. Needs a connection of its own (subscriber mode).
 */
export class CancelListener {
  private readonly running = new Map<string, AbortController>();

  private constructor(private readonly subscriber: Redis) {
    subscriber.on('message', (_channel: string, id: string) => this.running.get(id)?.abort(new Error('cancelled')));
  }

  static async start(subscriber: Redis): Promise<CancelListener> {
    const listener = new CancelListener(subscriber);
    await subscriber.subscribe(CHANNEL);
    return listener;
  }

  register(id: string): AbortController {
    const controller = new AbortController();
    this.running.set(id, controller);
    return controller;
  }

  unregister(id: string): void {
    this.running.delete(id);
  }

  async close(): Promise<void> {
    await this.subscriber.unsubscribe(CHANNEL).catch(() => {});
    this.subscriber.disconnect();
  }
}
