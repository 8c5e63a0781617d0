import { appendFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { isJsonMediaType } from './openapi.ts';

/** One line of the contract log (JSON Lines). */
export type ContractLogLine =
  | { kind: 'route'; method: string; url: string; methodNotAllowed: boolean }
  | { kind: 'response'; method: string; route: string | null; status: number; contentType: string | null; body?: string };

/**
 * For the contract tests only (`BALER_CONTRACT_LOG=<file>`): every route the app registers,
 * and for every response its method, route pattern, status, media type and, for JSON, its
 * body, so a test can check all of them against openapi.yaml. Written synchronously (a test
 * may stop the service at any time); never enabled in production.
 */
export function registerContractLog(app: FastifyInstance, file: string): void {
  const write = (line: ContractLogLine) => appendFileSync(file, `${JSON.stringify(line)}\n`);
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) write({ kind: 'route', method, url: route.url, methodNotAllowed: route.config?.methodNotAllowed === true });
  });
  app.addHook('onSend', async (request, reply, payload) => {
    const header = reply.getHeader('content-type');
    const contentType = typeof header === 'string' ? (header.split(';')[0] ?? '').trim() : null;
    const line: ContractLogLine = { kind: 'response', method: request.method, route: request.routeOptions.url ?? null, status: reply.statusCode, contentType };
    if (contentType && isJsonMediaType(contentType) && typeof payload === 'string') line.body = payload;
    write(line);
    return payload;
  });
}
