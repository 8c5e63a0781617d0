import { missingPlatformMessage, platformFit, platformText, type Platform, type WantedPlatform } from '../../platform.ts';
import { ArchiveImportError } from './errors.ts';
import { clipText, ITEM_CHARS, listSome } from './error-text.ts';

/** Other names of one image an error names. */
const ALSO_LISTED = 3;

/** A name an archive records for an image; `name` is absent when only a tag is recorded (OCI ref.name). */
export interface ImageName {
  name?: string;
  tag: string;
}

/** One image of an archive, as a choice. */
export interface Candidate<T> {
  names: ImageName[];
  /** How to call it when it has no name (e.g. `an untagged image (config sha256:…)`). */
  label: string;
  value: T;
}

/** Which image of an archive a build takes: by name and/or tag if given, and for its platform (os linux). */
export interface Selection extends WantedPlatform {
  name?: string;
  tag?: string;
}

/**
 * The platforms a candidate is for, as the archive states them (an index entry's `platform`,
 * else the image's config); undefined when the archive does not say.
 */
export type PlatformsOf<T> = (candidate: Candidate<T>) => Promise<Platform[] | undefined>;

/**
 * `name:tag` of a reference as tools record it (`RepoTags`, `repositories`, annotations):
 * the tag is what follows the last `:` after the last `/` (`latest` when there is none);
 * references by digest name no tag and are left out.
 */
export function parseReference(ref: string): ImageName | undefined {
  if (!ref || ref.includes('@')) return undefined;
  const slash = ref.lastIndexOf('/');
  const colon = ref.lastIndexOf(':');
  if (colon > slash) {
    const name = ref.slice(0, colon);
    const tag = ref.slice(colon + 1);
    return name && tag ? { name, tag } : undefined;
  }
  return { name: ref, tag: 'latest' };
}

/** An OCI `org.opencontainers.image.ref.name`: a full reference, or (most often) just a tag. */
export function parseRefName(ref: string): ImageName | undefined {
  if (ref.includes('/') || ref.includes(':') || ref.includes('@')) return parseReference(ref);
  return ref ? { tag: ref } : undefined;
}

export function formatName(n: ImageName): string {
  return n.name === undefined ? n.tag : `${n.name}:${n.tag}`;
}

/** The short form registries and Docker print: without `docker.io/library/`, `docker.io/`, podman's `localhost/`. */
function familiar(name: string): string {
  return name.replace(/^(?:index\.)?docker\.io\/(?:library\/)?/, '').replace(/^localhost\//, '');
}

function nameMatches(n: ImageName, sel: Selection): boolean {
  if (n.name === undefined) {
    // Only a tag is recorded: it is what the user asked for, as a tag or (no tag asked) as a name.
    return sel.tag !== undefined ? sel.tag === n.tag : sel.name === n.tag;
  }
  if (sel.name !== undefined && sel.name !== n.name && familiar(sel.name) !== familiar(n.name)) return false;
  return sel.tag === undefined || sel.tag === n.tag;
}

function describe<T>(c: Candidate<T>): string {
  const [first, ...others] = c.names.map(formatName);
  const base = first ?? c.label;
  return others.length > 0 ? `${base} (also ${listSome(others, ALSO_LISTED)})` : base;
}

/** The choices, for messages: `a:1, b:2 (also b:latest), an untagged image (config …)`, a handful of them. */
function describeAll<T>(candidates: Candidate<T>[]): string {
  if (candidates.length === 0) return 'no images';
  // Sorted: tools write multi-image archives in no fixed order (dockerd's save follows a map).
  // Clipped first, so that sorting costs the same whatever the names' lengths.
  return listSome(candidates.map((c) => clipText(describe(c), ITEM_CHARS)).sort());
}

/** Platforms an error names, at most: an archive may state any number. */
const MAX_PLATFORMS_KEPT = 1000;

/**
 * The image of an archive that `sel` picks: by name and/or tag if given (as in nixpkgs
 * dockerTools: `fromImageName`/`fromImageTag`), else any. Of several, the one for the
 * platform asked (`platformsOf` tells, reading configs where the archive's index does not say;
 * several images of one platform that differ only by variant resolve to the best variant).
 * Anything else is an ArchiveImportError naming the choices: no image, several of the
 * platform, one whose platform the archive does not state, or none of the platform (naming the
 * platforms there are). A single match is returned as is: its platform is checked on import.
 */
export async function pickImage<T>(candidates: Candidate<T>[], sel: Selection, platformsOf: PlatformsOf<T>): Promise<Candidate<T>> {
  const wanted = sel.name !== undefined || sel.tag !== undefined;
  const matches = wanted ? candidates.filter((c) => c.names.some((n) => nameMatches(n, sel))) : candidates;
  const [only] = matches;
  if (only && matches.length === 1) return only;
  if (matches.length === 0) {
    if (candidates.length === 0) throw new ArchiveImportError('the archive holds no image');
    throw new ArchiveImportError(`the archive holds no image ${want(sel)}; it holds ${describeAll(candidates)}`);
  }
  const fits: Array<{ candidate: Candidate<T>; rank: number }> = [];
  const seen = new Set<string>();
  for (const candidate of matches) {
    const platforms = await platformsOf(candidate);
    // One image the archive says nothing of could be the one: only the user can tell.
    if (!platforms) throw ambiguous(matches, sel);
    let rank: number | undefined;
    for (const p of platforms) {
      const fit = platformFit(p, sel);
      if (fit !== undefined && (rank === undefined || fit < rank)) rank = fit;
      if (seen.size < MAX_PLATFORMS_KEPT) seen.add(clipText(platformText(p), ITEM_CHARS));
    }
    if (rank !== undefined) fits.push({ candidate, rank });
  }
  if (fits.length === 0) throw new ArchiveImportError(missingPlatformMessage('the archive', sel, listSome([...seen].sort()), wanted ? want(sel) : undefined));
  const best = fits.reduce((min, f) => Math.min(min, f.rank), Number.POSITIVE_INFINITY);
  const top = fits.filter((f) => f.rank === best).map((f) => f.candidate);
  const [first] = top;
  // Entries of one name (or none) for one platform are one image listed twice: the first is taken.
  if (first && top.every((c) => sameNames(c, first))) return first;
  throw ambiguous(top, sel);
}

function sameNames<T>(a: Candidate<T>, b: Candidate<T>): boolean {
  const key = (c: Candidate<T>) => c.names.map(formatName).sort().join('\n');
  return key(a) === key(b);
}

function ambiguous<T>(matches: Candidate<T>[], sel: Selection): ArchiveImportError {
  if (sel.name !== undefined || sel.tag !== undefined) {
    return new ArchiveImportError(`ambiguous: ${want(sel)} matches several images of the archive: ${describeAll(matches)}; set fromImageName and fromImageTag`);
  }
  return new ArchiveImportError(`ambiguous: the archive holds ${describeAll(matches)}; set fromImageName/fromImageTag`);
}

function want(sel: Selection): string {
  if (sel.name !== undefined && sel.tag !== undefined) return `${sel.name}:${sel.tag}`;
  if (sel.name !== undefined) return `${sel.name} (any tag)`;
  return `with tag ${sel.tag}`;
}

/** The image a selection names, for messages (`app:1`, `app (any tag)`, `with tag 1`); undefined when it names none. */
export function selectionText(sel: Selection): string | undefined {
  return sel.name !== undefined || sel.tag !== undefined ? want(sel) : undefined;
}
