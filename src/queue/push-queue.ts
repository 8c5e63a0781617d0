import { Queue, type ConnectionOptions } from 'bullmq';

export const PUSH_QUEUE = 'baler-pushes';

/** A push job: which build's image, to which registry reference. */
export interface PushJobData {
  buildId: string;
  ref: string;
}

export function createPushQueue(connection: ConnectionOptions): Queue<PushJobData> {
  return new Queue<PushJobData>(PUSH_QUEUE, { connection });
}

export async function enqueuePush(queue: Queue<PushJobData>, data: PushJobData): Promise<void> {
  await queue.add('push', data, {
    attempts: 3,
    backoff: { type: 'exponential', delay: 2000 },
    removeOnComplete: { age: 24 * 3600 },
    removeOnFail: { age: 7 * 24 * 3600 },
  });
}
