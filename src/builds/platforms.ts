/**
 * Build platforms (`os/architecture`): the names a spec's `platforms` and a contents entry's
 * `platform` use, and how a multi-platform spec becomes one single-platform spec per platform.
 * A platform's spec is exactly the spec a single-platform build of that architecture would have
 * (same contents, same keys), so each platform's image, layers and caches are those of that
 * build: the same bytes whichever way it was asked for. Which platforms are known, and how many
 * one build may have (1–8), the schema says (openapi.yaml: Platform, BuildSpec.platforms).
 */
import type { ContentEntry } from '../image/sources/content-entry.ts';
import type { OutputFormat } from '../image/sinks/output-format.ts';

/** The platform a single-platform spec builds for. */
export function platformOfArchitecture(architecture: string): string {
  return `linux/${architecture}`;
}

/** `linux/arm64` → `arm64`. */
export function architectureOf(platform: string): string {
  return platform.slice(platform.indexOf('/') + 1);
}

/** The platforms a resolved spec builds, in order: its `platforms`, else its architecture's. */
export function platformsOf(spec: { platforms?: string[]; architecture: string }): string[] {
  return spec.platforms ?? [platformOfArchitecture(spec.architecture)];
}

/** Whether a contents entry belongs in the image of `platform` (an entry naming none belongs in every one). */
export function entryIsFor(entry: ContentEntry, platform: string): boolean {
  return entry.platform === undefined || entry.platform === platform;
}

/** The entry as a step's input: without its `platform` (which picked it, and is not part of the layer). */
export function entryInput(entry: ContentEntry): ContentEntry {
  if (entry.platform === undefined) return entry;
  const { platform: _platform, ...rest } = entry;
  return rest as ContentEntry;
}

/**
 * The single-platform spec of one platform of a multi-platform spec: its architecture, no
 * `platforms`, and an `oci-archive` (its manifest is what the index names). Its contents keep
 * their `platform` fields: the step planner picks this platform's.
 */
export function specForPlatform<S extends { platforms?: string[]; architecture: string; format: OutputFormat }>(spec: S, platform: string): S {
  const { platforms: _platforms, ...single } = spec;
  return { ...single, architecture: architectureOf(platform), format: 'oci-archive' } as S;
}

/** What the schema cannot say about `platforms` and the contents' `platform`s, as field errors. */
export function platformViolations(spec: { platforms?: string[]; architecture?: string; format?: OutputFormat; contents?: ContentEntry[] }): Array<{ pointer: string; message: string }> {
  const errors: Array<{ pointer: string; message: string }> = [];
  const { platforms } = spec;
  if (platforms !== undefined) {
    if (spec.architecture !== undefined) errors.push({ pointer: '/architecture', message: 'give either architecture or platforms, not both' });
    platforms.forEach((p, i) => {
      if (platforms.indexOf(p) !== i) errors.push({ pointer: `/platforms/${i}`, message: `${p} is listed twice` });
    });
    if (spec.format !== undefined && spec.format !== 'oci-archive') {
      errors.push({
        pointer: '/format',
        message: 'a multi-platform build is an oci-archive (its image index); download one platform in another format with ?platform=&format=',
      });
    }
  }
  const built = platforms ?? [platformOfArchitecture(spec.architecture ?? 'amd64')];
  (spec.contents ?? []).forEach((entry, i) => {
    if (entry.platform !== undefined && !built.includes(entry.platform)) {
      errors.push({ pointer: `/contents/${i}/platform`, message: `${entry.platform} is not a platform of this build (${built.join(', ')})` });
    }
  });
  return errors;
}

/** The platform of this host (what a download without `?platform=` gives of a multi-platform build). */
export function hostPlatform(): string {
  return platformOfArchitecture(process.arch === 'x64' ? 'amd64' : process.arch);
}
