/**
 * Reading what a registry sends without letting it decide how much is held: a body is read
 * chunk by chunk and abandoned (its stream cancelled) past a limit.
 */

/** The whole body, or `tooLarge()` thrown once it is over `max` bytes (by Content-Length or as read). */
export async function readCapped(res: Response, max: number, tooLarge: () => Error): Promise<Buffer> {
  const length = Number(res.headers.get('content-length') ?? NaN);
  if (length > max) {
    await res.body?.cancel();
    throw tooLarge();
  }
  const chunks: Buffer[] = [];
  let total = 0;
  if (!res.body) return Buffer.alloc(0);
  const reader = res.body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > max) throw tooLarge();
      chunks.push(Buffer.from(value));
    }
  } finally {
    if (total > max) await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
  return Buffer.concat(chunks);
}

/**
 * At most the first `maxBytes` of a body, read for at most `maxMs` (a registry dripping an
 * error body must not hold the request); the rest is never read.
 */
export async function readHead(res: Response, maxBytes: number, maxMs: number): Promise<Buffer> {
  if (!res.body) return Buffer.alloc(0);
  const reader = res.body.getReader();
  const chunks: Buffer[] = [];
  let total = 0;
  let timer: NodeJS.Timeout | undefined;
  const timeUp = new Promise<'time'>((resolve) => {
    timer = setTimeout(() => resolve('time'), maxMs);
  });
  try {
    while (total < maxBytes) {
      const next = await Promise.race([reader.read(), timeUp]);
      if (next === 'time' || next.done) break;
      chunks.push(Buffer.from(next.value));
      total += next.value.length;
    }
  } catch {
    // A body that breaks off is read as far as it came.
  } finally {
    clearTimeout(timer);
    await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
  return Buffer.concat(chunks).subarray(0, maxBytes);
}
