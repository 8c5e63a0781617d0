import type { FastifyInstance } from 'fastify';
import { Problem } from '../problem.ts';

/** No spec needs more; a deeper document is an attack on whatever walks it next. */
export const MAX_JSON_DEPTH = 32;

/** How deeply a parsed JSON value nests, counted without recursion (and stopping past `limit`). */
export function jsonDepth(value: unknown, limit: number): number {
  let deepest = 0;
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop() as [unknown, number];
    if (node === null || typeof node !== 'object') continue;
    deepest = Math.max(deepest, depth);
    if (deepest > limit) return deepest;
    for (const child of Object.values(node)) stack.push([child, depth + 1]);
  }
  return deepest;
}

/** Refuse JSON bodies nested deeper than MAX_JSON_DEPTH, before validation walks them. */
export function limitJsonDepth(app: FastifyInstance): void {
  app.addHook('preValidation', async (request) => {
    if (request.body !== null && typeof request.body === 'object' && jsonDepth(request.body, MAX_JSON_DEPTH) > MAX_JSON_DEPTH) {
      throw new Problem(400, `the JSON document nests deeper than ${MAX_JSON_DEPTH} levels`);
    }
  });
}
