import type { FastifyReply, FastifyRequest } from 'fastify';
import type { SubmissionResponse } from '../submission/idempotency.ts';

/** The request's `Idempotency-Key` (the first, if sent twice); undefined without one. */
export function idempotencyKeyOf(request: FastifyRequest): string | undefined {
  const header = request.headers['idempotency-key'];
  if (header === undefined) return undefined;
  return Array.isArray(header) ? (header[0] ?? '') : header;
}

/** A submission's answer; a replayed one (the first request's, again) says so. */
export function sendSubmissionResponse(reply: FastifyReply, { response, replayed }: { response: SubmissionResponse; replayed: boolean }): FastifyReply {
  if (replayed) void reply.header('Idempotent-Replayed', 'true');
  if (response.location) void reply.header('Location', response.location);
  return reply.status(response.status).send(response.body);
}
