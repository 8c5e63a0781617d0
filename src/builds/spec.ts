import type { Digest } from '../digest.ts';

/** Docker image config fields a spec may set (the Docker image spec's `config` object). */
export interface ImageRunConfig {
  Cmd?: string[];
  Entrypoint?: string[];
  Env?: string[];
  WorkingDir?: string;
  User?: string;
  ExposedPorts?: Record<string, Record<string, never>>;
  Volumes?: Record<string, Record<string, never>>;
  Labels?: Record<string, string>;
  StopSignal?: string;
}

export type ContentEntry =
  | { tar: Digest; to?: string; preserveOwners?: boolean }
  | { file: Digest; to: string; mode?: string }
  | { text: string; to: string; mode?: string }
  | { dir: string; mode?: string }
  | { symlink: string; target: string };

export type Compression = 'gzip' | 'none';

/** A BuildSpec as posted (see BuildSpec in openapi.yaml). */
export interface BuildSpec {
  name: string;
  tag?: string;
  contents?: ContentEntry[];
  config?: ImageRunConfig;
  uid?: number;
  gid?: number;
  created?: string;
  architecture?: string;
  compression?: Compression;
}

/** A spec with every default applied and `created: "now"` fixed, as queued and built. */
export interface ResolvedSpec {
  name: string;
  tag: string;
  contents: ContentEntry[];
  config?: ImageRunConfig;
  uid: number;
  gid: number;
  created: string;
  architecture: string;
  compression: Compression;
}

export const DEFAULT_CREATED = '1970-01-01T00:00:01Z';

export function resolveSpec(spec: BuildSpec, now: Date): ResolvedSpec {
  const created = spec.created === undefined ? DEFAULT_CREATED : spec.created === 'now' ? rfc3339Seconds(now) : spec.created;
  const resolved: ResolvedSpec = {
    name: spec.name,
    tag: spec.tag ?? 'latest',
    contents: spec.contents ?? [],
    uid: spec.uid ?? 0,
    gid: spec.gid ?? 0,
    created,
    architecture: spec.architecture ?? 'amd64',
    compression: spec.compression ?? 'gzip',
  };
  if (spec.config) resolved.config = spec.config;
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
export function referencedBlobs(spec: { contents?: ContentEntry[] }): Digest[] {
  const digests = new Set<Digest>();
  for (const entry of spec.contents ?? []) {
    if ('tar' in entry) digests.add(entry.tar);
    if ('file' in entry) digests.add(entry.file);
  }
  return [...digests];
}
