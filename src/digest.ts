import { createHash, type Hash } from 'node:crypto';

/** A content digest in OCI form: `sha256:<64 lowercase hex>`. */
export type Digest = `sha256:${string}`;

export const DIGEST_PATTERN = '^sha256:[a-f0-9]{64}$';
const DIGEST_RE = new RegExp(DIGEST_PATTERN);

export function isDigest(value: string): value is Digest {
  return DIGEST_RE.test(value);
}

export function hexOf(digest: Digest): string {
  return digest.slice('sha256:'.length);
}

export function digestOf(data: string | Buffer): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export function digestFromHash(hash: Hash): Digest {
  return `sha256:${hash.digest('hex')}`;
}
