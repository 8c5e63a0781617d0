import { PackageURL } from 'packageurl-js';

/** `pkg:deb/debian/NAME@VERSION?arch=ARCH` (purl spec's deb type), encoded by packageurl-js. */
export function debPurl(name: string, version: string, architecture: string): string {
  return new PackageURL('deb', 'debian', name, version, { arch: architecture }, undefined).toString();
}

/** `pkg:apk/alpine/NAME@VERSION?arch=ARCH` (purl spec's apk type). */
export function apkPurl(name: string, version: string, architecture: string): string {
  return new PackageURL('apk', 'alpine', name, version, { arch: architecture }, undefined).toString();
}
