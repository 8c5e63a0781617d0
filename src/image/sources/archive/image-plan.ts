import type { Digest } from '../../../digest.ts';
import { overBudget, type ArchiveBudgets } from './budgets.ts';
import { ArchiveImportError } from './errors.ts';
import type { Platform } from '../../platform.ts';
import type { ImageName } from './select-image.ts';

/** What an archive says about the image picked: where its config and layers are, and its names. */
export interface ImagePlan {
  repoTags: string[];
  /** The platform an index entry states for the image; absent, its config's says. */
  platform?: Platform;
  config: { path: string; digest?: Digest };
  /** Bottom first; `digest` is the digest of the member as stored (compressed or not), when known. */
  layers: Array<{ path: string; digest?: Digest }>;
}

/** What planning may cost: the archive's budgets, and the layers the image may have. */
export interface PlanLimits {
  budgets: Pick<ArchiveBudgets, 'maxImages' | 'maxNames'>;
  maxLayers: number;
}

/** A JSON object as parsed, not yet checked. */
export type Json = Record<string, unknown>;

export function isObject(value: unknown): value is Json {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

export function optionalString(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/** The digest a member's path states: `blobs/sha256/<hex>` (OCI layout, Docker 25) or `<hex>.json` (a docker-archive config). */
export function digestOfPath(path: string): Digest | undefined {
  const m = /^(?:\.\/)?(?:blobs\/sha256\/([a-f0-9]{64})|([a-f0-9]{64})\.json)$/.exec(path);
  const hex = m?.[1] ?? m?.[2];
  return hex ? `sha256:${hex}` : undefined;
}

/** The names, each once, in their first order. */
export function namesOf(refs: Iterable<ImageName | undefined>): ImageName[] {
  const seen = new Map<string, ImageName>();
  for (const ref of refs) {
    if (!ref) continue;
    // Length-prefixed, so no name and tag run into another pair; `:` alone is "tag only".
    const key = ref.name === undefined ? `:${ref.tag}` : `${ref.name.length}:${ref.name}${ref.tag}`;
    if (!seen.has(key)) seen.set(key, ref);
  }
  return [...seen.values()];
}

/** Counts the names an archive records against its budget, as they are read. */
export class NameCount {
  private count = 0;
  constructor(private readonly max: number) {}

  add(n: number): void {
    this.count += n;
    if (this.count > this.max) throw overBudget('maxNames', this.max, `the archive records more than ${this.max} image names`);
  }
}

export function checkImageCount(count: number, max: number, where: string): void {
  if (count > max) throw overBudget('maxImages', max, `${where} lists ${count} images, more than ${max}`);
}

/** The image's layers against the limit: Docker refuses images deeper than 125 layers. */
export function checkLayerCount(count: number, maxLayers: number): void {
  if (count > maxLayers) throw new ArchiveImportError(`the image has ${count} layers, more than the limit of ${maxLayers}`);
}

/** The names as `name:tag` (a tag-only name is left out). */
export function formatNames(names: ImageName[]): string[] {
  return names.filter((n) => n.name !== undefined).map((n) => `${n.name}:${n.tag}`);
}
