import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { Problem } from '../problem.ts';

const KEY_PREFIX = 'baler:idem:';
const TTL_SECONDS = 24 * 3600;
const PENDING_TTL_SECONDS = 600;
const MAX_KEY_LENGTH = 255;

/** What a submission answers: kept as it is, so a retry gets the same answer. */
export interface SubmissionResponse {
  status: number;
  location?: string;
  body: unknown;
}

interface StoredResponse extends SubmissionResponse {
  fingerprint: string;
}

/**
 * Idempotency keys for submissions: the first response to a key is kept for a day and a retry
 * with the same key gets it again instead of doing the work twice. The same key with a different
 * request is a client mistake (422); a retry while the first is still running gets 409.
 */
export class Idempotency {
  constructor(private readonly redis: Redis) {}

  /**
   * Runs `handle` once per key. `fingerprint` identifies the request (e.g. a hash of its body);
   * without a key, `handle` just runs. `replayed`: the answer is the first request's.
   */
  async run(key: string | undefined, scope: string, fingerprint: string, handle: () => Promise<SubmissionResponse>): Promise<{ response: SubmissionResponse; replayed: boolean }> {
    if (key === undefined) return { response: await handle(), replayed: false };
    if (key.length === 0 || key.length > MAX_KEY_LENGTH) throw new Problem(400, `Idempotency-Key must be 1 to ${MAX_KEY_LENGTH} characters`);
    const redisKey = `${KEY_PREFIX}${scope}:${createHash('sha256').update(key).digest('hex')}`;

    const claimed = await this.redis.set(redisKey, JSON.stringify({ pending: true, fingerprint }), 'EX', PENDING_TTL_SECONDS, 'NX');
    if (claimed !== 'OK') {
      const stored = JSON.parse((await this.redis.get(redisKey)) ?? '{}') as Partial<StoredResponse> & { pending?: boolean };
      if (stored.fingerprint !== fingerprint) throw new Problem(422, 'this Idempotency-Key was used for a different request');
      if (stored.pending || stored.status === undefined) throw new Problem(409, 'a request with this Idempotency-Key is still in progress; retry later');
      return { response: stored as StoredResponse, replayed: true };
    }
    try {
      const response = await handle();
      await this.redis.set(redisKey, JSON.stringify({ ...response, fingerprint }), 'EX', TTL_SECONDS);
      return { response, replayed: false };
    } catch (err) {
      // A failed first attempt keeps nothing: the key can be used again.
      await this.redis.del(redisKey);
      throw err;
    }
  }
}

export function fingerprintOf(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex');
}
