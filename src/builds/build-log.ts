import type { Redis } from 'ioredis';
import type { BuildEventStream } from '../events/event-stream.ts';

const KEY_SUFFIX = ':log';
const KEY_PREFIX = 'baler:build:';

/**
 * A build's log (its scripts' output), kept in Redis next to the record so any API replica
 * can serve it. Appends stop at `maxBytes`, with one line saying so. With `events`, what is
 * appended is also a `log` event of the build.
 */
export class BuildLogs {
  constructor(
    private readonly redis: Redis,
    /** The most a log keeps, in bytes. */
    readonly maxBytes: number,
    private readonly events?: BuildEventStream,
  ) {}

  private key(id: string): string {
    return KEY_PREFIX + id + KEY_SUFFIX;
  }

  async append(id: string, text: string): Promise<void> {
    const appended = await this.redis.eval(
      `local len = redis.call('STRLEN', KEYS[1])
       local max = tonumber(ARGV[2])
       if len >= max then return 0 end
       local chunk = ARGV[1]
       if len + #chunk > max then
         chunk = string.sub(chunk, 1, max - len) .. '\\n[log truncated at ' .. max .. ' bytes]\\n'
       end
       redis.call('APPEND', KEYS[1], chunk)
       return chunk`,
      1,
      this.key(id),
      text,
      String(this.maxBytes),
    );
    if (typeof appended === 'string' && this.events) await this.events.append(id, 'log', { text: appended });
  }

  async read(id: string): Promise<string> {
    return (await this.redis.get(this.key(id))) ?? '';
  }

  /** A new attempt starts its log afresh. */
  async clear(id: string): Promise<void> {
    await this.redis.del(this.key(id));
  }
}
