/**
 * The tenant of a service run without tokens, and of build records and jobs written before
 * they carried one.
 */
export const DEFAULT_TENANT = 'default';

/** Whose build (or build job) it is. */
export function tenantOf(owned: { tenant?: string }): string {
  return owned.tenant ?? DEFAULT_TENANT;
}
