import { PackageURL } from 'packageurl-js';

import type { PackageRecord } from '../attestation-types.ts';
import type { DatabasePackage } from './database-package.ts';
import type { OsRelease } from './os-release.ts';

/** The namespace when the image has no os-release: the distribution each package manager is named after. */
const DEFAULT_NAMESPACE: Record<PackageRecord['type'], string> = { deb: 'debian', apk: 'alpine' };

/**
 * A package's URL (the purl spec's deb and apk types), encoded by packageurl-js:
 * `pkg:deb/debian/NAME@VERSION?arch=ARCH&distro=debian-12`, `pkg:apk/alpine/NAME@VERSION?arch=ARCH&distro=alpine-3.20.0`.
 * The namespace is the image's os-release ID (`ubuntu`, `wolfi`…), `debian` or `alpine`
 * without one; `distro` is `ID-VERSION_ID` when the image says both.
 */
export function packagePurl(pkg: DatabasePackage, os: OsRelease = {}): string {
  const qualifiers: Record<string, string> = { arch: pkg.architecture };
  if (os.id && os.versionId) qualifiers.distro = `${os.id}-${os.versionId}`;
  return new PackageURL(pkg.type, os.id ?? DEFAULT_NAMESPACE[pkg.type], pkg.name, pkg.version, qualifiers, undefined).toString();
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
