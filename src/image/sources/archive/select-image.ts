import { ArchiveImportError } from './errors.ts';
import { clipText, ITEM_CHARS, listSome } from './error-text.ts';

/** Other names of one image an error names. */
const ALSO_LISTED = 3;

/** A name an archive records for an image; `name` is absent when only a tag is recorded (OCI ref.name). */
export interface ImageName {
  name?: string;
  tag: string;
}

export interface Platform {
  architecture?: string;
  os?: string;
  variant?: string;
}

/** One image of an archive, as a choice. */
export interface Candidate<T> {
  names: ImageName[];
  /** How to call it when it has no name (e.g. `an untagged image (config sha256:…)`). */
  label: string;
  platform?: Platform;
  value: T;
}

export interface Selection {
  name?: string;
  tag?: string;
  architecture: string;
}

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

function platformText(p: Platform | undefined): string {
  if (!p) return 'unknown platform';
  return [p.os ?? '?', p.architecture ?? '?', p.variant].filter(Boolean).join('/');
}

function describe<T>(c: Candidate<T>, withPlatform: boolean): string {
  const [first, ...others] = c.names.map(formatName);
  const notes = [...(others.length > 0 ? [`also ${listSome(others, ALSO_LISTED)}`] : []), ...(withPlatform && c.platform ? [platformText(c.platform)] : [])];
  const base = first ?? c.label;
  return notes.length > 0 ? `${base} (${notes.join('; ')})` : base;
}

/** The choices, for messages: `a:1, b:2 (also b:latest), an untagged image (config …)`, a handful of them. */
function describeAll<T>(candidates: Candidate<T>[]): string {
  if (candidates.length === 0) return 'no images';
  const withPlatform = candidates.some((c) => c.platform);
  // Sorted: tools write multi-image archives in no fixed order (dockerd's save follows a map).
  // Clipped first, so that sorting costs the same whatever the names' lengths.
  return listSome(candidates.map((c) => clipText(describe(c, withPlatform), ITEM_CHARS)).sort());
}

/**
 * Of several entries for one image, the one for linux/`architecture` (the first such, one
 * without a variant preferred); undefined when there is none.
 */
export function pickPlatform<T extends { platform?: Platform }>(items: T[], architecture: string): T | undefined {
  const fits = items.filter((i) => i.platform?.os === 'linux' && i.platform.architecture === architecture);
  return fits.find((i) => !i.platform?.variant) ?? fits[0];
}

/**
 * The image of an archive that `sel` picks: by name and/or tag if given (as in nixpkgs dockerTools:
 * `fromImageName`/`fromImageTag`), else the only one. Entries of one name that differ only by
 * platform are resolved to linux/`sel.architecture`. Anything else is an ArchiveImportError
 * naming the choices.
 */
export function pickImage<T>(candidates: Candidate<T>[], sel: Selection): Candidate<T> {
  const wanted = sel.name !== undefined || sel.tag !== undefined;
  let matches = wanted ? candidates.filter((c) => c.names.some((n) => nameMatches(n, sel))) : candidates;
  if (matches.length > 1 && matches.every((c) => c.platform)) {
    const fit = pickPlatform(matches, sel.architecture);
    if (!fit) {
      throw new ArchiveImportError(`the archive holds no linux/${sel.architecture} image${wanted ? ` for ${want(sel)}` : ''}; it holds ${describeAll(matches)}`);
    }
    matches = [fit];
  }
  const [only] = matches;
  if (only && matches.length === 1) return only;
  if (matches.length === 0) {
    if (candidates.length === 0) throw new ArchiveImportError('the archive holds no image');
    throw new ArchiveImportError(`the archive holds no image ${want(sel)}; it holds ${describeAll(candidates)}`);
  }
  if (wanted) {
    throw new ArchiveImportError(`ambiguous: ${want(sel)} matches several images of the archive: ${describeAll(matches)}; set fromImageName and fromImageTag`);
  }
  throw new ArchiveImportError(`ambiguous: the archive holds ${describeAll(matches)}; set fromImageName/fromImageTag`);
}

function want(sel: Selection): string {
  if (sel.name !== undefined && sel.tag !== undefined) return `${sel.name}:${sel.tag}`;
  if (sel.name !== undefined) return `${sel.name} (any tag)`;
  return `with tag ${sel.tag}`;
}
