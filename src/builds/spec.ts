import type { Digest } from '../digest.ts';
import { defaultCompression, type OutputCompression, type OutputFormat } from '../image/sinks/output-format.ts';
import type { ImageRunConfig } from '../image/run-config.ts';
import type { ContentEntry } from '../image/sources/content-entry.ts';
import { architectureOf } from './platforms.ts';

/** The base image: an earlier build of this service, an uploaded image archive, or a registry image. */
export type FromImage = { build: string } | { blob: Digest } | { ref: string };

/** A BuildSpec as posted (see BuildSpec in openapi.yaml). */
export interface BuildSpec {
  name: string;
  tag?: string;
  fromImage?: FromImage;
  fromImageName?: string;
  fromImageTag?: string;
  contents?: ContentEntry[];
  config?: ImageRunConfig;
  uid?: number;
  gid?: number;
  created?: string;
  architecture?: string;
  /** One image per platform (os/architecture) and an index over them; not with `architecture`. */
  platforms?: string[];
  variant?: string;
  format?: OutputFormat;
  compression?: OutputCompression;
  runAsRoot?: string;
  extraCommands?: string;
  shadowSetup?: boolean;
  diskSize?: number;
  memorySize?: number;
  timeout?: number;
  priority?: number;
  layering?: { maxLayers: number };
}

export const VM_DEFAULTS = { diskSize: 1024, memorySize: 512, timeout: 600 } as const;

/** A spec with every default applied and `created: "now"` fixed, as queued and built. */
export interface ResolvedSpec {
  name: string;
  tag: string;
  fromImage?: FromImage;
  /** Picks one image of a multi-image archive (no default: a missing tag means any tag). */
  fromImageName?: string;
  fromImageTag?: string;
  contents: ContentEntry[];
  config?: ImageRunConfig;
  uid: number;
  gid: number;
  created: string;
  /** With `platforms`: the first platform's (each platform's image is built with its own). */
  architecture: string;
  /** Set only for a multi-platform build: its platforms, in the index's order (platforms.ts). */
  platforms?: string[];
  /** The architecture's variant as the spec names it; the image config gets its architecture's default without (build-platform.ts: arm64 → v8). */
  variant?: string;
  format: OutputFormat;
  /** What the format compresses: the whole archive (docker-archive, rootfs) or each layer (the OCI forms). */
  compression: OutputCompression;
  runAsRoot?: string;
  extraCommands?: string;
  shadowSetup: boolean;
  /** MiB the VM step may write. */
  diskSize: number;
  /** MiB of memory of the VM. */
  memorySize: number;
  /** Seconds the VM step may take. */
  timeout: number;
  /** Queue order: 1 goes first; equal priorities in submission order. Not part of the image. */
  priority: number;
  /** Split contents into up to this many layers, base included (buildLayeredImage). */
  layering?: { maxLayers: number };
}

export const DEFAULT_PRIORITY = 100;

export const DEFAULT_CREATED = '1970-01-01T00:00:01Z';

export function resolveSpec(spec: BuildSpec, now: Date): ResolvedSpec {
  // An index holds every platform's image; only oci-archive holds an index.
  const format = spec.format ?? (spec.platforms ? 'oci-archive' : 'docker-archive');
  const architecture = spec.architecture ?? (spec.platforms?.[0] ? architectureOf(spec.platforms[0]) : 'amd64');
  const created = spec.created === undefined ? DEFAULT_CREATED : spec.created === 'now' ? rfc3339Seconds(now) : spec.created;
  const resolved: ResolvedSpec = {
    name: spec.name,
    tag: spec.tag ?? 'latest',
    contents: spec.contents ?? [],
    uid: spec.uid ?? 0,
    gid: spec.gid ?? 0,
    created,
    architecture,
    format,
    compression: spec.compression ?? defaultCompression(format),
    shadowSetup: spec.shadowSetup ?? false,
    diskSize: spec.diskSize ?? VM_DEFAULTS.diskSize,
    memorySize: spec.memorySize ?? VM_DEFAULTS.memorySize,
    timeout: spec.timeout ?? VM_DEFAULTS.timeout,
    priority: spec.priority ?? DEFAULT_PRIORITY,
  };
  if (spec.platforms) resolved.platforms = spec.platforms;
  if (spec.variant !== undefined) resolved.variant = spec.variant;
  if (spec.config) resolved.config = spec.config;
  if (spec.fromImage) resolved.fromImage = spec.fromImage;
  if (spec.layering) resolved.layering = spec.layering;
  if (spec.fromImageName !== undefined) resolved.fromImageName = spec.fromImageName;
  if (spec.fromImageTag !== undefined) resolved.fromImageTag = spec.fromImageTag;
  if (spec.runAsRoot !== undefined) resolved.runAsRoot = spec.runAsRoot;
  if (spec.extraCommands !== undefined) resolved.extraCommands = spec.extraCommands;
  return resolved;
}

function rfc3339Seconds(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Seconds since the epoch of an RFC 3339 timestamp, or NaN. */
export function epochSeconds(created: string): number {
  return Math.floor(Date.parse(created) / 1000);
}

/** Every blob a spec refers to, in order, without repeats. */
export function referencedBlobs(spec: { contents?: ContentEntry[]; fromImage?: FromImage }): Digest[] {
  return [...new Set(blobReferences(spec).map((r) => r.digest))];
}

/** Every place a spec names a blob, as a JSON Pointer into the spec, in order. */
export function blobReferences(spec: { contents?: ContentEntry[]; fromImage?: FromImage }): Array<{ digest: Digest; pointer: string }> {
  const references: Array<{ digest: Digest; pointer: string }> = [];
  if (spec.fromImage && 'blob' in spec.fromImage) references.push({ digest: spec.fromImage.blob, pointer: '/fromImage/blob' });
  (spec.contents ?? []).forEach((entry, i) => {
    if ('tar' in entry) references.push({ digest: entry.tar, pointer: `/contents/${i}/tar` });
    if ('file' in entry) references.push({ digest: entry.file, pointer: `/contents/${i}/file` });
  });
  return references;
}

/**
 * Whether a spec has a step that must run in a VM: the one rule for planning, building and
 * queueing (capabilities.ts). A script of white space alone runs nothing, so boots no VM.
 */
export function needsVm(spec: Pick<ResolvedSpec, 'runAsRoot' | 'extraCommands'>): boolean {
  return Boolean(spec.runAsRoot?.trim() || spec.extraCommands?.trim());
}
