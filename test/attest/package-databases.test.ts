/**
 * Issue 16: the package-database parsers on their own (src/attest/sbom/dpkg-status.ts,
 * apk-installed.ts): which dpkg states count as installed, the `Source:` forms, continuation
 * lines, and malformed files (PackageDatabaseError, a 422 like any LayerInputError).
 */
import { describe, expect, it } from 'vitest';
import { apkInstalledPackages } from '../../src/attest/sbom/apk-installed.ts';
import type { DatabasePackage } from '../../src/attest/sbom/database-package.ts';
import { dpkgStatusPackages } from '../../src/attest/sbom/dpkg-status.ts';
import { parseOsRelease } from '../../src/attest/sbom/os-release.ts';
import { PackageDatabaseError } from '../../src/attest/sbom/package-database-error.ts';
import { packagePurl } from '../../src/attest/sbom/purl.ts';
import { DEFAULT_SBOM_BUDGETS } from '../../src/attest/sbom/sbom-budgets.ts';
import { LayerInputError } from '../../src/image/layer-entry.ts';

const STATUS = `Package: a
Status: install ok installed
Version: 1.0
Architecture: amd64
Description: first line
 more
 .
 and more

Package: held
Status: hold ok installed
Version: 2:3.4-1
Architecture: all
Source: held-src (3.4-0.1)

Package: removed
Status: deinstall ok config-files
Version: 1.0
Architecture: amd64

Package: half
Status: install reinstreq half-installed
Version: 1.0
Architecture: amd64

Package: utf
Status: install ok installed
Version: 1.0
Architecture: amd64
Source: utf-src
Maintainer: Zoë <z@example.org>
`;

describe('dpkg status', () => {
  it('lists installed packages only (any want, installed state), with their source', () => {
    const packages = dpkgStatusPackages(Buffer.from(STATUS), 'status', DEFAULT_SBOM_BUDGETS, { statusless: 'not-installed' });
    expect(packages.map((p) => [p.name, p.version, p.architecture, p.sourceName, p.sourceVersion])).toEqual([
      ['a', '1.0', 'amd64', undefined, undefined],
      ['held', '2:3.4-1', 'all', 'held-src', '3.4-0.1'],
      ['utf', '1.0', 'amd64', 'utf-src', '1.0'],
    ]);
    expect(packagePurl(packages[1] as DatabasePackage)).toBe('pkg:deb/debian/held@2:3.4-1?arch=all');
    expect(packagePurl(packages[1] as DatabasePackage, { id: 'ubuntu', versionId: '24.04' })).toBe('pkg:deb/ubuntu/held@2:3.4-1?arch=all&distro=ubuntu-24.04');
  });

  it('counts a paragraph without Status as installed only where told (distroless status.d)', () => {
    const control = Buffer.from('Package: x\nVersion: 1\nArchitecture: arm64\n');
    expect(dpkgStatusPackages(control, 'status', DEFAULT_SBOM_BUDGETS, { statusless: 'not-installed' })).toEqual([]);
    expect(dpkgStatusPackages(control, 'status.d/x', DEFAULT_SBOM_BUDGETS, { statusless: 'installed' }).map((p) => p.name)).toEqual(['x']);
  });

  it('refuses a malformed file, naming it and the line', () => {
    for (const [text, message] of [
      ['Package: a\nnot a field\n', /status: line 2 is not 'Field: value'/],
      [' continues nothing\n', /status: line 1 continues no field/],
      ['Package: a\nStatus: install ok installed\nArchitecture: amd64\n', /installed package 'a' has no Version/],
      ['Package: a\nStatus: install ok installed\nVersion: 1\nArchitecture: amd64\nSource: a b c\n', /Source that is not 'name \(version\)'/],
    ] as const) {
      const parse = () => dpkgStatusPackages(Buffer.from(text), 'status', DEFAULT_SBOM_BUDGETS, { statusless: 'not-installed' });
      expect(parse).toThrow(PackageDatabaseError);
      expect(parse).toThrow(LayerInputError);
      expect(parse).toThrow(message);
    }
  });
});

describe('apk installed', () => {
  it('refuses a block without a name or a line that is not X:value', () => {
    expect(() => apkInstalledPackages(Buffer.from('V:1\nA:x86_64\n'), 'installed', DEFAULT_SBOM_BUDGETS)).toThrow(/has no P: \(name\)/);
    expect(() => apkInstalledPackages(Buffer.from('P:a\nbad\n'), 'installed', DEFAULT_SBOM_BUDGETS)).toThrow(/line 2 is not 'X:value'/);
  });

  it('keeps a UTF-8 licence and ignores the lines it does not need', () => {
    const [pkg] = apkInstalledPackages(Buffer.from('C:Q1=\nP:a\nV:1-r0\nA:aarch64\nL:Licence Zoë\nF:usr\nR:file\nZ:Q1=\n\n'), 'installed', DEFAULT_SBOM_BUDGETS);
    expect(pkg).toEqual({ type: 'apk', name: 'a', version: '1-r0', architecture: 'aarch64', license: 'Licence Zoë' });
  });
});

describe('os-release', () => {
  it('gives ID and VERSION_ID, quoted or not', () => {
    const text = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\nID_LIKE=debian\n';
    expect(parseOsRelease(Buffer.from(text), 'os-release', DEFAULT_SBOM_BUDGETS)).toEqual({ id: 'debian', versionId: '12' });
    expect(parseOsRelease(Buffer.from("ID='alpine'\nVERSION_ID=3.20.0\n"), 'os-release', DEFAULT_SBOM_BUDGETS)).toEqual({ id: 'alpine', versionId: '3.20.0' });
  });
});
