import { Enums, Models, Serialize, Spec } from '@cyclonedx/cyclonedx-library';
import { hexOf } from '../../digest.ts';
import type { ContentsComponent, PackageRecord, SbomInput } from '../attestation-types.ts';
import { ociPurl } from './purl.ts';
import { classifyLicense } from './recorded-license.ts';
import { sbomUuid, splitImageName } from './sbom-ids.ts';

/** baler's properties (CycloneDX's name-value extension; `baler:` is its namespace). */
const PROPERTY = {
  imageId: 'baler:image:id',
  manifestDigest: 'baler:image:manifest_digest',
  platform: 'baler:image:platform',
  layer: 'baler:package:layer_diff_id',
  architecture: 'baler:package:architecture',
  sourceName: 'baler:package:source_name',
  sourceVersion: 'baler:package:source_version',
  contentsTo: 'baler:contents:to',
  contentsBlob: 'baler:contents:blob',
} as const;

const SERIALIZER = new Serialize.JsonSerializer(new Serialize.JSON.Normalize.Factory(Spec.Spec1dot6));

function sha256(hex: string): Models.HashDictionary {
  return new Models.HashDictionary([[Enums.HashAlgorithm['SHA-256'], hex]]);
}

function properties(entries: Array<[string, string | undefined]>): Models.PropertyRepository {
  return new Models.PropertyRepository(entries.filter((e): e is [string, string] => e[1] !== undefined).map(([name, value]) => new Models.Property(name, value)));
}

/**
 * The image's SBOM as CycloneDX 1.6 JSON, built with @cyclonedx/cyclonedx-library's model and
 * serialised by its JsonSerializer: `metadata.component` is the image (type container, its id
 * and manifest digest as properties, an oci purl when the manifest digest is known);
 * `components` are its OS packages (type library: purl, licence, the layer's diff_id and the
 * source package as properties), its base image (container, by digest) and its contents entries
 * (type file, their blob's SHA-256, where they went as a property), each with the files it put
 * in the image as sub-components (type file, path as name, SHA-256). The image depends on each
 * top-level component (the dependency graph's only edges).
 *
 * Deterministic: the serial number derives from the image id and name, every bom-ref is set
 * (the image `image`, the base `base-image`, a package its purl, contents `contents-N` and
 * `contents-N:PATH`), lists are sorted by the serialiser, the time is the build's.
 */
export function cycloneDxDocument(input: SbomInput): string {
  const { repository, tag } = splitImageName(input.name);
  const arch = input.platform.split('/')[1];
  const image = new Models.Component(Enums.ComponentType.Container, repository, {
    bomRef: 'image',
    version: tag,
    purl: input.manifestDigest ? ociPurl(repository, input.manifestDigest, { arch, tag }) : undefined,
    properties: properties([
      [PROPERTY.imageId, input.imageId],
      [PROPERTY.manifestDigest, input.manifestDigest],
      [PROPERTY.platform, input.platform],
    ]),
  });
  const created = new Date(input.created);
  if (Number.isNaN(created.getTime())) throw new TypeError(`created '${input.created}' is not an ISO 8601 time`);
  const tools = new Models.Tools();
  tools.components.add(new Models.Component(Enums.ComponentType.Application, 'baler', { bomRef: 'tool-baler', version: input.toolVersion }));
  const bom = new Models.Bom({
    serialNumber: `urn:uuid:${sbomUuid('cyclonedx', input.imageId, input.name)}`,
    metadata: new Models.Metadata({ timestamp: created, component: image, tools }),
  });

  if (input.base) {
    bom.components.add(new Models.Component(Enums.ComponentType.Container, input.base.reference, { bomRef: 'base-image', version: input.base.digest, hashes: sha256(hexOf(input.base.digest)) }));
  }
  for (const [i, entry] of input.contents.entries()) bom.components.add(contentsComponent(`contents-${i}`, entry));
  const refs = new Set<string>();
  for (const pkg of input.packages) {
    let ref = pkg.purl;
    // Two records with the same purl (not from imagePackages, which lists each once) stay apart.
    for (let n = 2; refs.has(ref); n++) ref = `${pkg.purl}#${n}`;
    refs.add(ref);
    bom.components.add(packageComponent(ref, pkg));
  }
  // The dependency graph's one edge set: the image holds each top-level component.
  for (const component of bom.components) image.dependencies.add(component.bomRef);
  return SERIALIZER.serialize(bom, { sortLists: true, space: 2 });
}

function contentsComponent(ref: string, entry: ContentsComponent): Models.Component {
  const component = new Models.Component(Enums.ComponentType.File, entry.source, {
    bomRef: ref,
    hashes: entry.blob ? sha256(hexOf(entry.blob)) : undefined,
    properties: properties([
      [PROPERTY.contentsTo, entry.to],
      [PROPERTY.contentsBlob, entry.blob],
    ]),
  });
  for (const file of entry.files) {
    component.components.add(new Models.Component(Enums.ComponentType.File, file.path, { bomRef: `${ref}:${file.path}`, hashes: sha256(file.sha256) }));
  }
  return component;
}

function packageComponent(ref: string, pkg: PackageRecord): Models.Component {
  const licenses = new Models.LicenseRepository();
  if (pkg.license) {
    const recorded = classifyLicense(pkg.license);
    licenses.add(
      recorded.kind === 'id' ? new Models.SpdxLicense(recorded.id) : recorded.kind === 'expression' ? new Models.LicenseExpression(recorded.expression) : new Models.NamedLicense(recorded.text),
    );
  }
  return new Models.Component(Enums.ComponentType.Library, pkg.name, {
    bomRef: ref,
    version: pkg.version,
    purl: pkg.purl,
    licenses,
    properties: properties([
      [PROPERTY.layer, pkg.layer],
      [PROPERTY.architecture, pkg.architecture],
      [PROPERTY.sourceName, pkg.sourceName],
      [PROPERTY.sourceVersion, pkg.sourceVersion],
    ]),
  });
}
