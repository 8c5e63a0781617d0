/**
 * Parallel uploads racing one quota (issue 12, attack 4): every upload starts while the tenant
 * still has room, and trickles its bytes in, so that a service that checks the room once and
 * then streams lets them all in.
 */
import { randomBytes } from 'node:crypto';
import type { TenantClient } from './hostile-service.ts';

/** `bytes` sent in `chunk`-sized pieces, `everyMs` apart (no Content-Length: a stream). */
export function trickle(bytes: Buffer, chunk = 64 * 1024, everyMs = 20): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (at >= bytes.length) {
        controller.close();
        return;
      }
      if (at > 0) await new Promise((r) => setTimeout(r, everyMs));
      controller.enqueue(new Uint8Array(bytes.subarray(at, at + chunk)));
      at += chunk;
    },
  });
}

export interface RaceResult {
  /** Each upload's status; 0: the connection was reset (a 413 sent while the body still came). */
  statuses: number[];
  /** Bytes the service said it stored (201/200 answers). */
  acceptedBytes: number;
}

/**
 * `count` uploads of `size` random bytes each (all different), started together: with a
 * Content-Length (the service may reserve it whole), or `streamed` without one.
 */
export async function raceUploads(client: TenantClient, count: number, size: number, opts: { streamed: boolean }): Promise<RaceResult> {
  const statuses = await Promise.all(
    Array.from({ length: count }, async () => {
      try {
        const bytes = randomBytes(size);
        const res = await client.upload(opts.streamed ? trickle(bytes) : bytes);
        await res.body?.cancel();
        return res.status;
      } catch {
        return 0;
      }
    }),
  );
  return { statuses, acceptedBytes: statuses.filter((s) => s === 201 || s === 200).length * size };
}
