/**
 * Platforms as images state them (an index entry's `platform`, an image config's `os`,
 * `architecture`, `variant`) against the one a build is for (always os linux), shared by every
 * kind of base: registry indexes, OCI archives, multi-image docker archives, earlier builds.
 */

/** A platform as an image or an index entry states it; any field may be missing. */
export interface Platform {
  os?: string;
  architecture?: string;
  variant?: string;
}

/** The platform a build is for: linux/`architecture`, and `variant` when it names one. */
export interface WantedPlatform {
  architecture: string;
  variant?: string;
}

/** What no variant means, as containerd normalises it: arm64 is v8, amd64 is v1. */
const DEFAULT_VARIANTS: Readonly<Record<string, string>> = { arm64: 'v8', amd64: 'v1' };

function normalVariant(architecture: string, variant: string | undefined): string | undefined {
  return variant || DEFAULT_VARIANTS[architecture];
}

/**
 * How well `p` fits `want`: 0 exactly (no variant and the default one are the same), 1 another
 * variant of the architecture when none was asked for (amd64/v3 for amd64), undefined not at
 * all (another os or architecture, or not the variant asked for). A missing os counts as linux.
 */
export function platformFit(p: Platform | undefined, want: WantedPlatform): 0 | 1 | undefined {
  if (!p || (p.os || 'linux') !== 'linux' || p.architecture !== want.architecture) return undefined;
  const theirs = normalVariant(want.architecture, p.variant);
  if (want.variant) return theirs === normalVariant(want.architecture, want.variant) ? 0 : undefined;
  return theirs === normalVariant(want.architecture, undefined) ? 0 : 1;
}

/** Of several entries of one index, the one for `want`: the first best fit; undefined when none fits. */
export function bestFit<T>(items: readonly T[], platformOf: (item: T) => Platform | undefined, want: WantedPlatform): T | undefined {
  let best: { item: T; rank: number } | undefined;
  for (const item of items) {
    const rank = platformFit(platformOf(item), want);
    if (rank !== undefined && (best === undefined || rank < best.rank)) best = { item, rank };
    if (best?.rank === 0) break;
  }
  return best?.item;
}

/**
 * Whether an image's own statement of its platform (its config, where no index entry says it)
 * rules out `want`. What it leaves out does not: a config without `architecture` or `variant`
 * is taken at its word for what it says, as Docker takes it.
 */
export function statesOtherPlatform(p: Platform, want: WantedPlatform): boolean {
  if (p.os && p.os !== 'linux') return true;
  if (p.architecture && p.architecture !== want.architecture) return true;
  if (p.variant && want.variant) return normalVariant(want.architecture, p.variant) !== normalVariant(want.architecture, want.variant);
  return false;
}

/** `linux/arm64/v8`; a missing os or architecture as `?`. `quote` shows each part (foreign text is made safe by the caller's rule). */
export function platformText(p: Platform, quote: (part: string) => string = (part) => part): string {
  return [p.os || '?', p.architecture || '?', p.variant]
    .filter((part): part is string => Boolean(part))
    .map(quote)
    .join('/');
}

export function wantedText(want: WantedPlatform): string {
  return platformText({ os: 'linux', ...want });
}

/**
 * The one sentence every kind of base fails with when it lacks the platform:
 * `<what> has no linux/arm64 image[ <which>]; it has: linux/amd64, linux/s390x`.
 */
export function missingPlatformMessage(what: string, want: WantedPlatform, has: string, which?: string): string {
  return `${what} has no ${wantedText(want)} image${which ? ` ${which}` : ''}; it has: ${has || 'none'}`;
}

/** Longest os, architecture or variant taken as stated: real ones are a few characters. */
const MAX_FIELD_CHARS = 64;

/**
 * The platform an object states in its `os`, `architecture` and `variant` fields: an index
 * entry's `platform`, an image config (parsed JSON). A field that is not a string is not
 * stated; one longer than any platform's name is stated as `?` (it fits nothing, and no long
 * text of an archive is kept).
 */
export function statedPlatform(value: unknown): Platform {
  if (value === null || typeof value !== 'object') return {};
  const v = value as Record<string, unknown>;
  const p: Platform = {};
  for (const key of ['os', 'architecture', 'variant'] as const) {
    const field = v[key];
    if (typeof field === 'string' && field !== '') p[key] = field.length <= MAX_FIELD_CHARS ? field : '?';
  }
  return p;
}
