import type { FastifyRequest } from 'fastify';
import { BUILD_ID_PATTERN } from '../builds/build-id.ts';
import type { BuildRecord } from '../builds/build-record.ts';
import type { BuildRepository } from '../builds/build-repository.ts';
import { Problem } from '../problem.ts';
import { DEFAULT_TENANT } from './auth.ts';

export function tenantOf(record: BuildRecord): string {
  return record.tenant ?? DEFAULT_TENANT;
}

/** The build `:id` names, if it is the requesting tenant's; 404 otherwise. */
export async function findTenantBuild(builds: BuildRepository, request: FastifyRequest<{ Params: { id: string } }>): Promise<BuildRecord> {
  const { id } = request.params;
  const record = BUILD_ID_PATTERN.test(id) ? await builds.get(id) : null;
  // Another tenant's build does not exist, as far as this one can tell.
  if (!record || tenantOf(record) !== request.tenant) throw new Problem(404, `build ${id} not found`);
  return record;
}
