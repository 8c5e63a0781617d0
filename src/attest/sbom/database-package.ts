import type { PackageRecord } from '../attestation-types.ts';

/** A package as one database file lists it: a PackageRecord before it is placed in a layer and the image's distribution names it (purl). */
export type DatabasePackage = Omit<PackageRecord, 'layer' | 'purl'>;

/** What makes two listings the same package: type, name, architecture and version. */
export function packageKey(pkg: DatabasePackage): string {
  return `${pkg.type}\0${pkg.name}\0${pkg.architecture}\0${pkg.version}`;
}
