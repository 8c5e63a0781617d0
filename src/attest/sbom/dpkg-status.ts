import { printable } from '../../image/printable.ts';
import { controlParagraphs } from './control-paragraphs.ts';
import type { DatabasePackage } from './database-package.ts';
import { PackageDatabaseError } from './package-database-error.ts';
import type { SbomBudgets } from './sbom-budgets.ts';

const FIELDS = new Set(['package', 'status', 'version', 'architecture', 'source']);

/** `Source: name` or `Source: name (version)`. */
const SOURCE = /^(\S+)(?:\s+\(([^()]+)\))?$/;

export interface DpkgStatusOptions {
  /**
   * Whether a paragraph without `Status:` is an installed package: not in dpkg's own status
   * file (dpkg writes a status for every package it knows), yes in distroless' `status.d/`
   * files (each one package's control file, written by the image's builder, no status).
   */
  statusless: 'installed' | 'not-installed';
}

/**
 * The installed packages of a dpkg database file (`/var/lib/dpkg/status`, or one file of the
 * distroless `status.d/`): paragraphs whose `Status:` says `installed` (`install ok installed`,
 * `hold ok installed`; its third word, as dpkg's own "installed" state). Packages that are
 * removed but keep their config files (`deinstall ok config-files`), half-installed or
 * unpacked are not installed. O(n) in the file's bytes.
 */
export function dpkgStatusPackages(data: Buffer, what: string, budgets: SbomBudgets, opts: DpkgStatusOptions): DatabasePackage[] {
  const packages: DatabasePackage[] = [];
  for (const paragraph of controlParagraphs(data, what, FIELDS, budgets)) {
    const name = paragraph.get('package');
    if (name === undefined) continue; // not a package's paragraph (dpkg ignores them too)
    const status = paragraph.get('status');
    const installed = status === undefined ? opts.statusless === 'installed' : status.split(/\s+/)[2] === 'installed';
    if (!installed) continue;
    const version = paragraph.get('version');
    const architecture = paragraph.get('architecture');
    if (!name || !version || !architecture) {
      throw new PackageDatabaseError(`${what}: installed package '${printable(name)}' has no ${!name ? 'name' : !version ? 'Version' : 'Architecture'}`);
    }
    const pkg: DatabasePackage = { type: 'deb', name, version, architecture };
    const source = paragraph.get('source');
    if (source) {
      const match = SOURCE.exec(source);
      if (!match) throw new PackageDatabaseError(`${what}: package '${printable(name)}' has a Source that is not 'name (version)': '${printable(source)}'`);
      pkg.sourceName = match[1] as string;
      // No version: the source's is the binary package's (deb-src-control(5)).
      pkg.sourceVersion = match[2]?.trim() ?? version;
    }
    packages.push(pkg);
  }
  return packages;
}
