import type { FastifyPluginAsync } from 'fastify';
import type { Queue } from 'bullmq';
import { BUILD_ID_PATTERN } from '../builds/build-id.ts';
import type { BuildRepository } from '../builds/build-repository.ts';
import { Problem } from '../problem.ts';
import { enqueuePush, type PushJobData } from '../queue/push-queue.ts';
import { parseReference, registryFor, RegistryError, type Registries } from '../registry/registries.ts';
import { DEFAULT_TENANT } from './auth.ts';
import { operationSchema } from './openapi.ts';

export interface PushesOptions {
  builds: BuildRepository;
  queue: Queue<PushJobData>;
  registries: Registries;
}

/**
 * `POST /v1/builds/{id}/push {"ref"}`: queue a push of a succeeded build's image to a registry
 * the operator allows; a worker does it, and its state shows on the build (`pushes`).
 */
export const pushesRoutes: FastifyPluginAsync<PushesOptions> = async (app, { builds, queue, registries }) => {
  app.post<{ Params: { id: string }; Body: { ref: string } }>(
    '/v1/builds/:id/push',
    { schema: operationSchema('pushBuild') },
    async (request, reply) => {
      const { id } = request.params;
      const build = BUILD_ID_PATTERN.test(id) ? await builds.get(id) : null;
      if (!build || (build.tenant ?? DEFAULT_TENANT) !== request.tenant) throw new Problem(404, `build ${id} not found`);
      if (build.status !== 'succeeded') throw new Problem(409, `build ${id} is ${build.status}; only a succeeded build can be pushed`);
      const { ref } = request.body;
      try {
        const parsed = parseReference(ref);
        if (parsed.digest) throw new RegistryError(`push to a tag, not a digest ('${ref}')`, 'reference');
        registryFor(registries, parsed.host);
      } catch (err) {
        if (err instanceof RegistryError) throw new Problem(422, err.message, { cause: err });
        throw err;
      }
      const pushes = { ...(build.pushes ?? {}), [ref]: { status: 'queued' as const, requestedAt: new Date().toISOString() } };
      await builds.update(id, { pushes });
      await enqueuePush(queue, { buildId: id, ref });
      request.log.info({ buildId: id, ref }, 'push queued');
      return reply.status(202).header('Location', `/v1/builds/${id}`).send({ ref, status: 'queued' });
    },
  );
};
