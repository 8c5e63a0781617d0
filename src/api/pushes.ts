import type { FastifyPluginAsync } from 'fastify';
import type { PushSubmission } from '../submission/push-submission.ts';
import { operationSchema } from './openapi.ts';
import { sendSubmissionResponse } from './submission-reply.ts';

export interface PushesOptions {
  pushes: PushSubmission;
}

/**
 * `POST /v1/builds/{id}/push {"ref"}`: queue a push of a succeeded build's image to a registry
 * the operator allows; a worker does it, and its state shows on the build (`pushes`).
 */
export const pushesRoutes: FastifyPluginAsync<PushesOptions> = async (app, { pushes }) => {
  app.post<{ Params: { id: string }; Body: { ref: string } }>('/v1/builds/:id/push', { schema: operationSchema('pushBuild') }, async (request, reply) =>
    sendSubmissionResponse(reply, { response: await pushes.submit(request.params.id, request.body.ref, request), replayed: false }),
  );
};
