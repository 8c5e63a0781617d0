import { createHash } from 'node:crypto';
import type { Digest } from '../../digest.ts';

/**
 * Identifiers the SBOM documents derive from what they describe, never from chance: the same
 * image gives byte-identical documents.
 */

/** RFC 9562's namespace for names that are URLs (and URNs). */
const URL_NAMESPACE = Buffer.from('6ba7b8119dad11d180b400c04fd430c8', 'hex');

/** The version 5 (name-based, SHA-1) UUID of `name` in the URL namespace (RFC 9562 5.5). */
export function nameUuid(name: string): string {
  const bytes = createHash('sha1').update(URL_NAMESPACE).update(name).digest().subarray(0, 16);
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x50;
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** The UUID of an image's SBOM of one format. */
export function sbomUuid(format: 'spdx' | 'cyclonedx', imageId: Digest, name: string): string {
  return nameUuid(`urn:baler:sbom:${format}:${imageId}:${encodeURIComponent(name)}`);
}

/** Short, stable tag of a string for identifiers (8 hex digits of its sha256). */
export function shortHash(value: string): string {
  return createHash('sha256').update(value).digest('hex').slice(0, 8);
}

/** `name:tag` (the tag after the last `:` that follows the last `/`) split; no tag gives `undefined`. */
export function splitImageName(name: string): { repository: string; tag?: string } {
  const slash = name.lastIndexOf('/');
  const colon = name.lastIndexOf(':');
  return colon > slash ? { repository: name.slice(0, colon), tag: name.slice(colon + 1) } : { repository: name };
}
