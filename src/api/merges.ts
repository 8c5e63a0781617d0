import type { FastifyPluginAsync } from 'fastify';
import type { TenantQuota } from '../auth/tenant-quota.ts';
import type { BuildRepository } from '../builds/build-repository.ts';
import { epochSeconds } from '../builds/spec.ts';
import { writeMergedDockerArchive } from '../image/sinks/docker-archive.ts';
import { loadImage } from '../image/stored-image.ts';
import { Problem } from '../problem.ts';
import type { BlobStore } from '../store/blob-store.ts';
import { ChargedStore } from '../store/charged-store.ts';
import { requireTenantBuild } from '../submission/tenant-build.ts';
import { operationSchema } from './openapi.ts';

export interface MergesOptions {
  store: BlobStore;
  builds: BuildRepository;
  /** The merged archive is charged to the tenant that asked for it. */
  quota: TenantQuota;
}

/**
 * `POST /v1/merges {"builds": [...]}`: dockerTools' mergeImages, one docker-archive holding
 * the images of several succeeded builds (every tag loadable by one `docker load`), stored as
 * a blob of the caller's and answered with its digest. Deterministic: the same builds in the
 * same order give the same blob. Over the caller's quota: 413 (the problem handler), nothing kept.
 */
export const mergesRoutes: FastifyPluginAsync<MergesOptions> = async (app, { store, builds, quota }) => {
  app.post<{ Body: { builds: string[] } }>('/v1/merges', { schema: operationSchema('mergeImages') }, async (request, reply) => {
    const images = [];
    let mtime = 0;
    for (const id of request.body.builds) {
      const build = await requireTenantBuild(builds, request.tenant, id);
      if (build.status !== 'succeeded' || !build.result) throw new Problem(409, `build ${id} is ${build.status}; only succeeded builds can be merged`);
      images.push({ image: await loadImage(store, build.result), repoTag: { name: build.spec.name, tag: build.spec.tag } });
      mtime = Math.max(mtime, epochSeconds(build.spec.created));
    }
    const merged = await new ChargedStore(store, quota, request.tenant).put(writeMergedDockerArchive(images, mtime, store));
    request.log.info({ builds: request.body.builds, digest: merged.digest }, 'images merged');
    return reply.status(201).header('Location', `/v1/blobs/${merged.digest}`).send({ digest: merged.digest, size: merged.size });
  });
};
