import { normalizeArchivePath, type ArchiveReader } from './archive-reader.ts';
import { ArchiveImportError } from './errors.ts';
import { checkImageCount, digestOfPath, formatNames, isObject, namesOf, NameCount, type ImagePlan, type PlanLimits } from './image-plan.ts';
import { statedPlatform, type Platform } from '../../platform.ts';
import { parseReference, pickImage, type Candidate, type ImageName, type PlatformsOf, type Selection } from './select-image.ts';

// docker-archive: manifest.json (Docker ≥ 1.10, podman/skopeo, nixpkgs dockerTools, Docker 25
// with paths into blobs/), names from `repositories` and `RepoTags`.

interface ManifestEntry {
  Config: string;
  Layers: string[];
  RepoTags: string[];
}

function parseManifestJson(value: unknown, limits: PlanLimits, names: NameCount): ManifestEntry[] {
  if (!Array.isArray(value)) throw new ArchiveImportError('manifest.json is not a list of images');
  checkImageCount(value.length, limits.budgets.maxImages, 'manifest.json');
  return value.map((entry, i) => {
    const what = `manifest.json entry ${i + 1}`;
    if (!isObject(entry)) throw new ArchiveImportError(`${what} is not an object`);
    if (typeof entry.Config !== 'string' || entry.Config === '') throw new ArchiveImportError(`${what} has no Config`);
    if (!Array.isArray(entry.Layers) || !entry.Layers.every((l) => typeof l === 'string')) {
      throw new ArchiveImportError(`${what}: Layers is not a list of paths`);
    }
    const tags = entry.RepoTags ?? [];
    if (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string')) throw new ArchiveImportError(`${what}: RepoTags is not a list of names`);
    names.add(tags.length);
    return { Config: entry.Config, Layers: entry.Layers as string[], RepoTags: tags as string[] };
  });
}

/** `repositories`: `{name: {tag: top-layer-id}}`, the legacy name table. */
function parseRepositories(value: unknown, names: NameCount): Array<{ name: string; tag: string; id: string }> {
  if (!isObject(value)) throw new ArchiveImportError('repositories is not an object');
  const out: Array<{ name: string; tag: string; id: string }> = [];
  // Counted as they are read: no copy of an oversized table is made before the budget speaks.
  for (const name of Object.keys(value)) {
    const tags = value[name];
    if (!isObject(tags)) throw new ArchiveImportError(`repositories: '${name}' is not an object of tags`);
    for (const tag of Object.keys(tags)) {
      names.add(1);
      const id = tags[tag];
      if (typeof id !== 'string') throw new ArchiveImportError(`repositories: '${name}:${tag}' is not a layer id`);
      out.push({ name, tag, id });
    }
  }
  return out;
}

/**
 * Add the names of `repositories` to the images they point at. The table points at each
 * image's top layer by its legacy id, `<id>/layer.tar`: directly in Docker's and nixpkgs dockerTools'
 * layout, through a symlink in containers/image's. A name goes to the one image whose top
 * layer is that path, or failing that, the same file after links; none or several: no one.
 * Candidates are indexed by both paths once and each path is resolved once, so the work
 * grows with images + names, not their product.
 */
function nameByRepositories(reader: ArchiveReader, candidates: Array<Candidate<ManifestEntry>>, repositories: Array<{ name: string; tag: string; id: string }>): void {
  const top = (c: Candidate<ManifestEntry>) => c.value.Layers.at(-1);
  const resolved = new Map<string, string | undefined>();
  const resolve = (path: string | undefined): string | undefined => {
    if (path === undefined) return undefined;
    if (!resolved.has(path)) resolved.set(path, resolvedPath(reader, path));
    return resolved.get(path);
  };
  const byTop = groupBy(candidates, (c) => normalizedPath(top(c)));
  let byResolvedTop: Map<string, Array<Candidate<ManifestEntry>>> | undefined;
  const added = new Map<Candidate<ManifestEntry>, ImageName[]>();
  for (const { name, tag, id } of repositories) {
    if (!/^[a-f0-9]{64}$/.test(id)) continue;
    const layerPath = `${id}/layer.tar`;
    let owners = byTop.get(layerPath);
    if (owners === undefined) {
      const target = resolve(layerPath);
      if (target === undefined) continue;
      byResolvedTop ??= groupBy(candidates, (c) => resolve(top(c)));
      owners = byResolvedTop.get(target);
    }
    const [owner] = owners ?? [];
    if (owner && owners?.length === 1) {
      const list = added.get(owner);
      if (list) list.push({ name, tag });
      else added.set(owner, [{ name, tag }]);
    }
  }
  for (const [owner, list] of added) owner.names = namesOf([...owner.names, ...list]);
}

/** Items grouped by a key; items without one are left out. */
function groupBy<T>(items: readonly T[], keyOf: (item: T) => string | undefined): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const key = keyOf(item);
    if (key === undefined) continue;
    const group = groups.get(key);
    if (group) group.push(item);
    else groups.set(key, [item]);
  }
  return groups;
}

/** The regular file a path names after links, or undefined when there is none. */
function resolvedPath(reader: ArchiveReader, path: string | undefined): string | undefined {
  if (path === undefined) return undefined;
  try {
    return reader.file(path, 'layer').path;
  } catch {
    return undefined;
  }
}

function normalizedPath(path: string | undefined): string | undefined {
  if (path === undefined) return undefined;
  try {
    return normalizeArchivePath(path, 'path');
  } catch {
    return undefined;
  }
}

/**
 * A docker-archive states an image's platform only in its config: each config is read once
 * (several entries may share one), and one that cannot be read or names no architecture
 * states none. Budgets still apply: a config over one fails the import.
 */
function statedPlatforms(reader: ArchiveReader): PlatformsOf<ManifestEntry> {
  const read = new Map<string, Platform[] | undefined>();
  return async (candidate) => {
    const path = candidate.value.Config;
    if (!read.has(path)) {
      const platform = await reader.readJson(path, 'image config').then(
        (json) => statedPlatform(json.value),
        (err: unknown) => {
          if (err instanceof ArchiveImportError) return {} as Platform;
          throw err;
        },
      );
      read.set(path, platform.architecture ? [platform] : undefined);
    }
    return read.get(path);
  };
}

/** The image `sel` picks from a docker-archive's manifest.json, named by its RepoTags and `repositories`. */
export async function planDockerArchive(reader: ArchiveReader, sel: Selection, limits: PlanLimits): Promise<ImagePlan> {
  const names = new NameCount(limits.budgets.maxNames);
  const entries = parseManifestJson((await reader.readJson('manifest.json', 'manifest.json')).value, limits, names);
  const candidates: Array<Candidate<ManifestEntry>> = entries.map((entry) => ({
    names: namesOf(entry.RepoTags.map(parseReference)),
    label: `an untagged image (config ${entry.Config})`,
    value: entry,
  }));

  if (reader.has('repositories')) {
    // Loaders ignore the legacy name table when manifest.json is there, so a malformed one is
    // skipped, not fatal (one over the names budget still fails: the budget is the archive's).
    const repositories = await reader.readJson('repositories', 'repositories').then(
      (json) => parseRepositories(json.value, names),
      (err: unknown) => {
        if (err instanceof ArchiveImportError) return [];
        throw err;
      },
    );
    nameByRepositories(reader, candidates, repositories);
  }

  const picked = await pickImage(candidates, sel, statedPlatforms(reader));
  return {
    repoTags: formatNames(picked.names),
    config: { path: picked.value.Config, digest: digestOfPath(picked.value.Config) },
    // Docker 25 points into blobs/, whose names are digests of the bytes stored: check those too.
    layers: picked.value.Layers.map((path) => {
      const digest = path.endsWith('.json') ? undefined : digestOfPath(path);
      return digest ? { path, digest } : { path };
    }),
  };
}
