import type { BlobOwners } from '../auth/blob-owners.ts';
import type { BuildRecord } from '../builds/build-record.ts';
import type { BuildRepository } from '../builds/build-repository.ts';
import { platformViolations } from '../builds/platforms.ts';
import { blobReferences, type BuildSpec } from '../builds/spec.ts';
import { vmCapViolations, type VmCaps } from '../builds/vm-caps.ts';
import { architectureViolations } from '../builds/platform-checks.ts';
import { compressionRefusal } from '../image/sinks/output-format.ts';
import { fieldProblem, type FieldError } from '../problem.ts';
import { parseReference, registryFor, RegistryError, type Registries } from '../registry/registries.ts';
import type { BlobStore } from '../store/blob-store.ts';
import { findTenantBuild } from './tenant-build.ts';

export interface BuildCheckDeps {
  builds: BuildRepository;
  store: BlobStore;
  owners: BlobOwners;
  registries: Registries;
  /** The operator's caps on `diskSize`, `memorySize` and `timeout`; over them, 400. */
  vmCaps: VmCaps;
}

/**
 * What the schema cannot say about a build spec: option combinations, dates, and that what it
 * names exists and is the tenant's. Resolves with the base build, when the spec names one.
 */
export async function checkBuildSpec(spec: BuildSpec, tenant: string, deps: BuildCheckDeps): Promise<BuildRecord | undefined> {
  const overCap = vmCapViolations(spec, deps.vmCaps);
  if (overCap.length > 0) throw fieldProblem(400, 'invalid build spec', overCap);
  const platformErrors = platformViolations(spec);
  if (platformErrors.length > 0) throw fieldProblem(400, 'invalid build spec', platformErrors);
  const badPlatform = architectureViolations(spec);
  if (badPlatform.length > 0) throw fieldProblem(400, 'invalid build spec', badPlatform);
  const refusal = spec.compression && compressionRefusal(spec.format ?? 'docker-archive', spec.compression);
  if (refusal) throw fieldProblem(400, 'invalid build spec', [{ pointer: '/compression', message: refusal }]);
  const created = spec.created;
  if (created !== undefined && created !== 'now' && Number.isNaN(Date.parse(created))) {
    throw fieldProblem(400, 'invalid build spec', [{ pointer: '/created', message: `'${created}' is not a valid date` }]);
  }
  if (spec.fromImage && 'ref' in spec.fromImage) {
    // A bad reference or a registry the operator does not allow is known before queueing.
    try {
      registryFor(deps.registries, parseReference(spec.fromImage.ref).host);
    } catch (err) {
      if (err instanceof RegistryError) throw fieldProblem(422, 'unusable base image', [{ pointer: '/fromImage/ref', message: err.message }], err);
      throw err;
    }
  }
  let base: BuildRecord | undefined;
  if (spec.fromImage && 'build' in spec.fromImage) {
    const id = spec.fromImage.build;
    const found = await findTenantBuild(deps.builds, tenant, id);
    if (!found) throw fieldProblem(422, 'unusable base image', [{ pointer: '/fromImage/build', message: `base build ${id} not found` }]);
    if (found.status !== 'succeeded') {
      throw fieldProblem(422, 'unusable base image', [{ pointer: '/fromImage/build', message: `base build ${id} is ${found.status}; a base must have succeeded` }]);
    }
    base = found;
  }
  const missing: FieldError[] = [];
  for (const { digest, pointer } of blobReferences(spec)) {
    if (!(await deps.owners.owns(tenant, digest)) || !(await deps.store.stat(digest))) missing.push({ pointer, message: `blob ${digest} not found (upload it to /v1/blobs first)` });
  }
  if (missing.length > 0) throw fieldProblem(422, 'blobs not found', missing);
  return base;
}
