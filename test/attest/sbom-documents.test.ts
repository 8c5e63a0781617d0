/**
 * Issue 16: the SBOM documents of an image (src/attest/sbom/spdx.ts, cyclonedx.ts). The
 * CycloneDX text validates with the CycloneDX library's own strict JSON validator (1.6 schema);
 * the SPDX document against a schema written here from the SPDX 2.3 specification's required
 * fields (clauses 6 to 8, 11). Both are byte-identical for the same input, whatever order its
 * lists come in.
 */
import { Spec, Validation } from '@cyclonedx/cyclonedx-library';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { describe, expect, it } from 'vitest';
import type { PackageRecord, SbomInput } from '../../src/attest/attestation-types.ts';
import { cycloneDxDocument } from '../../src/attest/sbom/cyclonedx.ts';
import { packagePurl } from '../../src/attest/sbom/purl.ts';
import { spdxDocument } from '../../src/attest/sbom/spdx.ts';
import { digestOf, type Digest } from '../../src/digest.ts';

const LAYER_1 = digestOf('layer 1');
const LAYER_2 = digestOf('layer 2');

function deb(name: string, version: string, extra: Partial<PackageRecord> = {}): PackageRecord {
  return { type: 'deb', name, version, architecture: 'amd64', purl: packagePurl({ type: 'deb', name, version, architecture: 'amd64' }), layer: LAYER_1, ...extra };
}

function apk(name: string, version: string, license: string, origin: string): PackageRecord {
  return { type: 'apk', name, version, architecture: 'x86_64', license, sourceName: origin, purl: packagePurl({ type: 'apk', name, version, architecture: 'x86_64' }), layer: LAYER_2 };
}

const INPUT: SbomInput = {
  name: 'registry.example/team/app:1.2',
  imageId: digestOf('config'),
  manifestDigest: digestOf('manifest'),
  platform: 'linux/amd64',
  created: '2026-12-03T10:00:00.000Z',
  packages: [
    deb('libc6', '2.36-9+deb12u9', { sourceName: 'glibc', sourceVersion: '2.36-9+deb12u9' }),
    deb('gcc-12-base', '12.2.0-14'),
    deb('libstdc++6', '12.2.0-14', { sourceName: 'gcc-12', sourceVersion: '12.2.0-14' }),
    apk('musl', '1.2.5-r0', 'MIT', 'musl'),
    apk('ca-certificates-bundle', '20240226-r0', 'MPL-2.0 AND MIT', 'ca-certificates'),
    apk('oddity', '1.0-r0', 'GPL2 or whatever', 'oddity'),
    // Generated: enough to see the lists sorted and the identifiers unique.
    ...Array.from({ length: 200 }, (_, i) => deb(`lib${i}`, `1.${i}`, { layer: i % 2 ? LAYER_1 : LAYER_2 })),
  ],
  contents: [
    {
      source: digestOf('app.tar'),
      blob: digestOf('app.tar'),
      to: '/opt/app',
      files: [
        { path: 'opt/app/bin/app', sha256: digestOf('app').slice(7) },
        { path: 'opt/app/etc/app.conf', sha256: digestOf('conf').slice(7) },
      ],
    },
    { source: 'text', to: '/etc/motd', files: [{ path: 'etc/motd', sha256: digestOf('hello').slice(7) }] },
  ],
  base: { reference: 'debian:bookworm-slim', digest: digestOf('base') as Digest },
  toolVersion: '0.1.0',
};

/** The same input, its lists reversed: the documents must not change. */
const SHUFFLED: SbomInput = { ...INPUT, packages: [...INPUT.packages].reverse(), contents: INPUT.contents.map((c) => ({ ...c, files: [...c.files].reverse() })) };

describe('CycloneDX 1.6', () => {
  const text = cycloneDxDocument(INPUT);
  const bom = JSON.parse(text) as {
    bomFormat: string;
    specVersion: string;
    serialNumber: string;
    metadata: { timestamp: string; component: { type: string; 'bom-ref': string; name: string; purl?: string } };
    components: Array<{
      type: string;
      name: string;
      'bom-ref': string;
      purl?: string;
      licenses?: unknown[];
      properties?: Array<{ name: string; value: string }>;
      components?: Array<{ name: string; hashes: unknown[] }>;
    }>;
  };

  it("validates with the CycloneDX library's strict JSON validator", async () => {
    expect(await new Validation.JsonStrictValidator(Spec.Version.v1dot6).validate(text)).toBeNull();
  });

  it('describes the image, its packages, base and contents, with fixed identifiers', () => {
    expect(bom).toMatchObject({
      bomFormat: 'CycloneDX',
      specVersion: '1.6',
      metadata: { timestamp: '2026-12-03T10:00:00.000Z', component: { type: 'container', 'bom-ref': 'image', name: 'registry.example/team/app' } },
    });
    expect(bom.serialNumber).toMatch(/^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(bom.metadata.component.purl).toBe(`pkg:oci/app@${INPUT.manifestDigest}?arch=amd64&repository_url=registry.example%2Fteam%2Fapp&tag=1.2`);
    expect(bom.components.length).toBe(INPUT.packages.length + 1 + INPUT.contents.length);
    const libc = bom.components.find((c) => c.name === 'libc6');
    expect(libc).toMatchObject({ type: 'library', 'bom-ref': 'pkg:deb/debian/libc6@2.36-9+deb12u9?arch=amd64', purl: 'pkg:deb/debian/libc6@2.36-9+deb12u9?arch=amd64' });
    expect(libc?.properties).toEqual(
      expect.arrayContaining([
        { name: 'baler:package:layer_diff_id', value: LAYER_1 },
        { name: 'baler:package:source_name', value: 'glibc' },
      ]),
    );
    expect(bom.components.find((c) => c.name === 'musl')?.licenses).toEqual([{ license: { id: 'MIT' } }]);
    expect(bom.components.find((c) => c.name === 'ca-certificates-bundle')?.licenses).toEqual([{ expression: 'MPL-2.0 AND MIT' }]);
    expect(bom.components.find((c) => c.name === 'oddity')?.licenses).toEqual([{ license: { name: 'GPL2 or whatever' } }]);
    expect(bom.components.find((c) => c['bom-ref'] === 'base-image')).toMatchObject({ type: 'container', name: 'debian:bookworm-slim' });
    const app = bom.components.find((c) => c['bom-ref'] === 'contents-0');
    expect(app?.components?.map((f) => f.name)).toEqual(['opt/app/bin/app', 'opt/app/etc/app.conf']);
  });

  it('is byte-identical for the same input, in any order', () => {
    expect(cycloneDxDocument(SHUFFLED)).toBe(text);
    expect(cycloneDxDocument({ ...INPUT, name: 'other:1' })).not.toBe(text);
  });
});

/**
 * SPDX 2.3's required fields, as its clauses state them: document creation information
 * (clause 6: version, data licence CC0-1.0, SPDXRef-DOCUMENT, name, namespace URI without `#`,
 * creators and created time), packages (clause 7: name, SPDXRef id, download location; a
 * verification code when files were analysed), files (clause 8: name, id, checksums),
 * relationships (clause 11), extracted licences (clause 10: id, text), with the formats the
 * clauses give (identifiers, checksums, times, purl external references). Clause 8.4 also asks
 * a SHA1 per file, which is not checked: the input carries sha256 only (spdx.ts says so).
 */
const SPDX_ID = '^SPDXRef-[A-Za-z0-9.-]+$';
const CHECKSUM = {
  type: 'object',
  required: ['algorithm', 'checksumValue'],
  properties: {
    algorithm: {
      enum: ['SHA1', 'SHA224', 'SHA256', 'SHA384', 'SHA512', 'SHA3-256', 'SHA3-384', 'SHA3-512', 'BLAKE2b-256', 'BLAKE2b-384', 'BLAKE2b-512', 'BLAKE3', 'MD2', 'MD4', 'MD5', 'MD6', 'ADLER32'],
    },
    checksumValue: { type: 'string', pattern: '^[0-9a-f]+$' },
  },
};
const LICENSE = { type: 'string', minLength: 1 };
const SPDX_SCHEMA = {
  type: 'object',
  required: ['spdxVersion', 'dataLicense', 'SPDXID', 'name', 'documentNamespace', 'creationInfo'],
  properties: {
    spdxVersion: { const: 'SPDX-2.3' },
    dataLicense: { const: 'CC0-1.0' },
    SPDXID: { const: 'SPDXRef-DOCUMENT' },
    name: { type: 'string', minLength: 1 },
    documentNamespace: { type: 'string', format: 'uri', not: { pattern: '#' } },
    creationInfo: {
      type: 'object',
      required: ['created', 'creators'],
      properties: {
        created: { type: 'string', pattern: '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}Z$' },
        creators: { type: 'array', minItems: 1, items: { type: 'string', pattern: '^(Person|Organization|Tool): .+' } },
      },
    },
    packages: {
      type: 'array',
      items: {
        type: 'object',
        required: ['SPDXID', 'name', 'downloadLocation'],
        properties: {
          SPDXID: { type: 'string', pattern: SPDX_ID },
          name: { type: 'string', minLength: 1 },
          versionInfo: { type: 'string' },
          downloadLocation: { type: 'string', minLength: 1 },
          filesAnalyzed: { type: 'boolean' },
          checksums: { type: 'array', items: CHECKSUM },
          licenseConcluded: LICENSE,
          licenseDeclared: LICENSE,
          primaryPackagePurpose: { enum: ['APPLICATION', 'FRAMEWORK', 'LIBRARY', 'CONTAINER', 'OPERATING-SYSTEM', 'DEVICE', 'FIRMWARE', 'SOURCE', 'ARCHIVE', 'FILE', 'INSTALL', 'OTHER'] },
          externalRefs: {
            type: 'array',
            items: {
              type: 'object',
              required: ['referenceCategory', 'referenceType', 'referenceLocator'],
              properties: {
                referenceCategory: { enum: ['SECURITY', 'PACKAGE-MANAGER', 'PERSISTENT-ID', 'OTHER'] },
                referenceType: { type: 'string' },
                referenceLocator: { type: 'string', pattern: '^\\S+$' },
              },
              if: { properties: { referenceType: { const: 'purl' } } },
              // biome-ignore lint/suspicious/noThenProperty: JSON Schema's keyword
              then: { properties: { referenceCategory: { const: 'PACKAGE-MANAGER' }, referenceLocator: { pattern: '^pkg:[a-z.+-]+/' } } },
            },
          },
        },
        // 7.9: a package whose files were analysed has a verification code.
        if: { not: { properties: { filesAnalyzed: { const: false } }, required: ['filesAnalyzed'] } },
        // biome-ignore lint/suspicious/noThenProperty: JSON Schema's keyword
        then: { required: ['packageVerificationCode'] },
      },
    },
    files: {
      type: 'array',
      items: {
        type: 'object',
        required: ['SPDXID', 'fileName', 'checksums'],
        properties: { SPDXID: { type: 'string', pattern: SPDX_ID }, fileName: { type: 'string', minLength: 1 }, checksums: { type: 'array', minItems: 1, items: CHECKSUM } },
      },
    },
    relationships: {
      type: 'array',
      items: {
        type: 'object',
        required: ['spdxElementId', 'relationshipType', 'relatedSpdxElement'],
        properties: {
          spdxElementId: { type: 'string', pattern: SPDX_ID },
          relatedSpdxElement: { type: 'string', pattern: `${SPDX_ID.slice(0, -1)}|^NONE$|^NOASSERTION$` },
          relationshipType: { enum: ['DESCRIBES', 'DESCRIBED_BY', 'CONTAINS', 'CONTAINED_BY', 'DEPENDS_ON', 'DEPENDENCY_OF', 'DESCENDANT_OF', 'ANCESTOR_OF', 'GENERATED_FROM', 'GENERATES', 'OTHER'] },
        },
      },
    },
    hasExtractedLicensingInfos: {
      type: 'array',
      items: {
        type: 'object',
        required: ['licenseId', 'extractedText'],
        properties: { licenseId: { type: 'string', pattern: '^LicenseRef-[A-Za-z0-9.-]+$' }, extractedText: { type: 'string', minLength: 1 } },
      },
    },
  },
};

describe('SPDX 2.3', () => {
  const doc = spdxDocument(INPUT) as {
    documentNamespace: string;
    creationInfo: { created: string; creators: string[] };
    packages: Array<{ SPDXID: string; name: string; licenseDeclared?: string; externalRefs?: Array<{ referenceLocator: string }>; comment?: string; sourceInfo?: string }>;
    files: Array<{ SPDXID: string; fileName: string }>;
    relationships: Array<{ spdxElementId: string; relationshipType: string; relatedSpdxElement: string }>;
    hasExtractedLicensingInfos: Array<{ licenseId: string; extractedText: string }>;
  };

  it('has every field SPDX 2.3 requires, in its formats', () => {
    const ajv = new Ajv2020({ allErrors: true, strict: false });
    addFormats.default(ajv);
    const validate = ajv.compile(SPDX_SCHEMA);
    expect(validate(doc), JSON.stringify(validate.errors)).toBe(true);
    // Identifiers are unique, and every relationship names elements of the document.
    const ids = [...doc.packages.map((p) => p.SPDXID), ...doc.files.map((f) => f.SPDXID), 'SPDXRef-DOCUMENT'];
    expect(new Set(ids).size).toBe(ids.length);
    for (const r of doc.relationships) expect(ids).toContain(r.relatedSpdxElement);
    for (const l of doc.packages.map((p) => p.licenseDeclared)) {
      if (l?.startsWith('LicenseRef-')) expect(doc.hasExtractedLicensingInfos.map((e) => e.licenseId)).toContain(l);
    }
  });

  it('describes the image, which contains its packages and contents and descends from its base', () => {
    expect(doc.creationInfo).toEqual({ created: '2026-12-03T10:00:00Z', creators: ['Tool: baler-0.1.0'] });
    expect(doc.relationships[0]).toEqual({ spdxElementId: 'SPDXRef-DOCUMENT', relationshipType: 'DESCRIBES', relatedSpdxElement: 'SPDXRef-Image' });
    expect(doc.relationships).toContainEqual({ spdxElementId: 'SPDXRef-Image', relationshipType: 'DESCENDANT_OF', relatedSpdxElement: 'SPDXRef-BaseImage' });
    const contains = doc.relationships.filter((r) => r.spdxElementId === 'SPDXRef-Image' && r.relationshipType === 'CONTAINS');
    expect(contains.length).toBe(INPUT.packages.length + INPUT.contents.length);
    const libc = doc.packages.find((p) => p.name === 'libc6');
    expect(libc?.externalRefs?.[0]?.referenceLocator).toBe('pkg:deb/debian/libc6@2.36-9+deb12u9?arch=amd64');
    expect(libc?.sourceInfo).toBe('built from source package glibc 2.36-9+deb12u9');
    expect(libc?.comment).toContain(LAYER_1);
    expect(doc.packages.find((p) => p.name === 'ca-certificates-bundle')?.licenseDeclared).toBe('MPL-2.0 AND MIT');
    expect(doc.hasExtractedLicensingInfos.map((e) => e.extractedText)).toEqual(['GPL2 or whatever']);
    expect(doc.files.map((f) => f.fileName)).toEqual(['./opt/app/bin/app', './opt/app/etc/app.conf', './etc/motd']);
  });

  it('is byte-identical for the same input, in any order, its namespace from the image', () => {
    expect(JSON.stringify(spdxDocument(SHUFFLED))).toBe(JSON.stringify(doc));
    expect(doc.documentNamespace).toMatch(/^urn:uuid:/);
    expect((spdxDocument({ ...INPUT, imageId: digestOf('other') }) as { documentNamespace: string }).documentNamespace).not.toBe(doc.documentNamespace);
  });
});
