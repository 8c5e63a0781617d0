import type { Digest } from '../digest.ts';

/** One OS package found in an image's package database. */
export interface PackageRecord {
  type: 'deb' | 'apk';
  name: string;
  version: string;
  architecture: string;
  /** Source package, when the database names one (dpkg `Source:`, apk `o:`). */
  sourceName?: string;
  sourceVersion?: string;
  /** As the database records it (apk `L:`; dpkg has none in status). */
  license?: string;
  /** pkg:deb/debian/NAME@VERSION?arch=ARCH[&distro=...], pkg:apk/alpine/NAME@VERSION?arch=ARCH */
  purl: string;
  /** diff_id of the layer whose package database first lists this name at this version. */
  layer: Digest;
}

/** What a build's contents entry put in the image. */
export interface ContentsComponent {
  /** How the spec named it: a blob digest, `text`, a path… (printable). */
  source: string;
  /** The stored blob it came from, when it came from one. */
  blob?: Digest;
  to: string;
  /** Files it put in the image (regular files only), sorted by path; bounded by the caller. */
  files: Array<{ path: string; sha256: string }>;
}

/** Everything an SBOM of one image says. */
export interface SbomInput {
  /** `name:tag` of the image as built. */
  name: string;
  /** The image's config digest (its id) and, when known, its manifest digest. */
  imageId: Digest;
  manifestDigest?: Digest;
  platform: string; // "linux/amd64"
  /** The build's reproducible time (ISO 8601): SBOMs of the same build are byte-identical. */
  created: string;
  packages: PackageRecord[];
  contents: ContentsComponent[];
  base?: { reference: string; digest: Digest };
  /** baler's version, for the creator/tool fields. */
  toolVersion: string;
}
