import { hexOf } from '../../digest.ts';
import type { ContentsComponent, PackageRecord, SbomInput } from '../attestation-types.ts';
import { ociPurl } from './purl.ts';
import { classifyLicense } from './recorded-license.ts';
import { sbomUuid, shortHash, splitImageName } from './sbom-ids.ts';

/** A JSON object of the document. */
type Json = Record<string, unknown>;

const NOASSERTION = 'NOASSERTION';
const IMAGE_ID = 'SPDXRef-Image';
const BASE_ID = 'SPDXRef-BaseImage';

/** The characters an SPDX identifier's idstring may hold (letters, digits, `.`, `-`); the rest become `-`. */
function idString(value: string): string {
  return value.replace(/[^A-Za-z0-9.-]/g, '-');
}

/** SPDX wants `YYYY-MM-DDThh:mm:ssZ` (UTC, no fractions). */
function spdxTime(iso: string): string {
  const time = Date.parse(iso);
  if (Number.isNaN(time)) throw new TypeError(`created '${iso}' is not an ISO 8601 time`);
  return new Date(time).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** The architecture of an OCI platform (`linux/amd64` → `amd64`). */
function platformArch(platform: string): string | undefined {
  return platform.split('/')[1];
}

/**
 * The image's SBOM as an SPDX 2.3 JSON document: the image is the package the document
 * DESCRIBES; it CONTAINS its OS packages (each with a purl, its source package as `sourceInfo`,
 * the layer it came from as its `comment`), and its contents entries (each a package with its
 * blob's sha256, CONTAINS the files it put in the image); it is a DESCENDANT_OF its base image.
 * A recorded licence that is an SPDX expression is `licenseDeclared`; free text becomes a
 * `LicenseRef-` with the text under `hasExtractedLicensingInfos`. Nothing is concluded
 * (`licenseConcluded` NOASSERTION).
 *
 * Deterministic: identifiers and the namespace derive from the image and its name, lists are
 * sorted, the time is the build's. Contents files carry sha256 only: SPDX 2.3 (8.4) also asks
 * a SHA1 per file, which SbomInput does not have.
 */
export function spdxDocument(input: SbomInput): Record<string, unknown> {
  const extracted = new Map<string, string>();
  const declared = (license: string | undefined): string => {
    if (!license) return NOASSERTION;
    const recorded = classifyLicense(license);
    if (recorded.kind === 'id') return recorded.id;
    if (recorded.kind === 'expression') return recorded.expression;
    const ref = `LicenseRef-${idString(recorded.text).slice(0, 40)}-${shortHash(recorded.text)}`;
    extracted.set(ref, recorded.text);
    return ref;
  };

  const { repository, tag } = splitImageName(input.name);
  const image: Json = {
    SPDXID: IMAGE_ID,
    name: input.name,
    versionInfo: tag ?? hexOf(input.imageId),
    downloadLocation: NOASSERTION,
    filesAnalyzed: false,
    primaryPackagePurpose: 'CONTAINER',
    // The image's id: the sha256 of its config.
    checksums: [{ algorithm: 'SHA256', checksumValue: hexOf(input.imageId) }],
    licenseConcluded: NOASSERTION,
    licenseDeclared: NOASSERTION,
    comment: `image id ${input.imageId}${input.manifestDigest ? `, manifest ${input.manifestDigest}` : ''}, platform ${input.platform}`,
  };
  if (input.manifestDigest) {
    image.externalRefs = [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: ociPurl(repository, input.manifestDigest, { arch: platformArch(input.platform), tag }) }];
  }

  const packages: Json[] = [image];
  const files: Json[] = [];
  const relationships: Json[] = [{ spdxElementId: 'SPDXRef-DOCUMENT', relationshipType: 'DESCRIBES', relatedSpdxElement: IMAGE_ID }];

  if (input.base) {
    packages.push({
      SPDXID: BASE_ID,
      name: input.base.reference,
      versionInfo: input.base.digest,
      downloadLocation: NOASSERTION,
      filesAnalyzed: false,
      primaryPackagePurpose: 'CONTAINER',
      checksums: [{ algorithm: 'SHA256', checksumValue: hexOf(input.base.digest) }],
      licenseConcluded: NOASSERTION,
      licenseDeclared: NOASSERTION,
    });
    relationships.push({ spdxElementId: IMAGE_ID, relationshipType: 'DESCENDANT_OF', relatedSpdxElement: BASE_ID });
  }

  for (const [i, entry] of input.contents.entries()) {
    const id = `SPDXRef-Contents-${i}`;
    packages.push(contentsPackage(id, entry));
    relationships.push({ spdxElementId: IMAGE_ID, relationshipType: 'CONTAINS', relatedSpdxElement: id });
    for (const file of [...entry.files].sort((a, b) => compare(a.path, b.path))) {
      const fileId = `SPDXRef-File-${i}-${idString(file.path).slice(-40)}-${shortHash(file.path)}`;
      files.push({ SPDXID: fileId, fileName: `./${file.path.replace(/^\/+/, '')}`, checksums: [{ algorithm: 'SHA256', checksumValue: file.sha256 }] });
      relationships.push({ spdxElementId: id, relationshipType: 'CONTAINS', relatedSpdxElement: fileId });
    }
  }

  const osPackages = [...input.packages].sort((a, b) => compare(a.purl, b.purl));
  const seen = new Set<string>();
  for (const pkg of osPackages) {
    let id = `SPDXRef-Package-${pkg.type}-${idString(pkg.name)}-${shortHash(pkg.purl)}`;
    // Two records with the same purl (not from imagePackages, which lists each once) stay apart.
    for (let n = 2; seen.has(id); n++) id = `SPDXRef-Package-${pkg.type}-${idString(pkg.name)}-${shortHash(pkg.purl)}-${n}`;
    seen.add(id);
    packages.push(osPackage(id, pkg, declared(pkg.license)));
    relationships.push({ spdxElementId: IMAGE_ID, relationshipType: 'CONTAINS', relatedSpdxElement: id });
  }

  const document: Json = {
    spdxVersion: 'SPDX-2.3',
    dataLicense: 'CC0-1.0',
    SPDXID: 'SPDXRef-DOCUMENT',
    name: input.name,
    documentNamespace: `urn:uuid:${sbomUuid('spdx', input.imageId, input.name)}`,
    creationInfo: { created: spdxTime(input.created), creators: [`Tool: baler-${input.toolVersion}`] },
    packages,
  };
  if (files.length > 0) document.files = files;
  document.relationships = relationships;
  if (extracted.size > 0) {
    document.hasExtractedLicensingInfos = [...extracted]
      .sort((a, b) => compare(a[0], b[0]))
      .map(([licenseId, text]) => ({ licenseId, name: text, extractedText: text, comment: 'as the package database records it' }));
  }
  return document;
}

function contentsPackage(id: string, entry: ContentsComponent): Json {
  const pkg: Json = {
    SPDXID: id,
    name: entry.source,
    downloadLocation: NOASSERTION,
    filesAnalyzed: false,
    licenseConcluded: NOASSERTION,
    licenseDeclared: NOASSERTION,
    comment: `contents put at ${entry.to}${entry.blob ? ` from blob ${entry.blob}` : ''}`,
  };
  if (entry.blob) {
    pkg.versionInfo = entry.blob;
    pkg.checksums = [{ algorithm: 'SHA256', checksumValue: hexOf(entry.blob) }];
  }
  return pkg;
}

function osPackage(id: string, pkg: PackageRecord, licenseDeclared: string): Json {
  const out: Json = {
    SPDXID: id,
    name: pkg.name,
    versionInfo: pkg.version,
    downloadLocation: NOASSERTION,
    filesAnalyzed: false,
    licenseConcluded: NOASSERTION,
    licenseDeclared,
    externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: pkg.purl }],
    comment: `${pkg.type} package, architecture ${pkg.architecture}, from layer ${pkg.layer}`,
  };
  if (pkg.sourceName) out.sourceInfo = `built from ${pkg.type === 'deb' ? 'source package' : 'origin'} ${pkg.sourceName}${pkg.sourceVersion ? ` ${pkg.sourceVersion}` : ''}`;
  return out;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
