/**
 * Two tenants, one `runAsRoot` that writes random bytes (issue 12, attack 7): what a script
 * generates at random (host keys, secrets) belongs to the tenant whose build ran it. Tenant B
 * submitting A's spec must get its own run, never A's bytes nor A's build id.
 */
export const RANDOM_SECRET_SPEC = {
  name: 'hostile/secret',
  runAsRoot: 'head -c 32 /dev/urandom | od -An -tx1 > /secret\n',
} as const;
