import { PackageURL } from 'packageurl-js';

/** `pkg:deb/debian/NAME@VERSION?arch=ARCH` (purl spec's deb type), encoded by packageurl-js. */
export function debPurl(name: string, version: string, architecture: string): string {
  return new PackageURL('deb', 'debian', name, version, { arch: architecture }, undefined).toString();
}

/** `pkg:apk/alpine/NAME@VERSION?arch=ARCH` (purl spec's apk type). */
export function apkPurl(name: string, version: string, architecture: string): string {
  return new PackageURL('apk', 'alpine', name, version, { arch: architecture }, undefined).toString();
}

/**
 * `pkg:oci/NAME@DIGEST?arch=…&repository_url=…&tag=…` for an image by its manifest digest
 * (the purl spec's oci type: NAME is the repository's last component, lowercased).
 */
export function ociPurl(repository: string, manifestDigest: string, opts: { arch?: string; tag?: string }): string {
  const name = (repository.split('/').pop() ?? repository).toLowerCase();
  const qualifiers: Record<string, string> = { repository_url: repository };
  if (opts.arch) qualifiers.arch = opts.arch;
  if (opts.tag) qualifiers.tag = opts.tag;
  return new PackageURL('oci', undefined, name, manifestDigest, qualifiers, undefined).toString();
}
