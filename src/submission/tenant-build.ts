import { BUILD_ID_PATTERN } from '../builds/build-id.ts';
import type { BuildRecord } from '../builds/build-record.ts';
import type { BuildRepository } from '../builds/build-repository.ts';
import { tenantOf } from '../builds/tenant.ts';
import { Problem } from '../problem.ts';

/** The build `id` names, if it is `tenant`'s; null for no such build and for another tenant's. */
export async function findTenantBuild(builds: BuildRepository, tenant: string, id: string): Promise<BuildRecord | null> {
  const record = BUILD_ID_PATTERN.test(id) ? await builds.get(id) : null;
  // Another tenant's build does not exist, as far as this one can tell.
  return record && tenantOf(record) === tenant ? record : null;
}

/** findTenantBuild, or a 404 problem. */
export async function requireTenantBuild(builds: BuildRepository, tenant: string, id: string): Promise<BuildRecord> {
  const record = await findTenantBuild(builds, tenant, id);
  if (!record) throw new Problem(404, `build ${id} not found`);
  return record;
}
