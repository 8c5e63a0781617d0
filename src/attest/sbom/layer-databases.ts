import type { Digest } from '../../digest.ts';
import { BlobRangeReader } from '../../image/blob-range-reader.ts';
import { LayerInputError, normalizeLayerPath } from '../../image/layer-entry.ts';
import { OPAQUE_MARKER, WHITEOUT_PREFIX } from '../../image/overlay-form.ts';
import { printable } from '../../image/printable.ts';
import { readStoredData, storedDataOf } from '../../image/stored-data.ts';
import { indexTar, TarFormatError, type IndexedTarEntry } from '../../image/tar-index.ts';
import type { TarIndexLimits } from '../../image/tar-limits.ts';
import type { BlobStore } from '../../store/blob-store.ts';
import { apkInstalledPackages } from './apk-installed.ts';
import type { DatabasePackage } from './database-package.ts';
import { databaseKind, touchesDatabases, type DatabaseKind } from './database-paths.ts';
import { dpkgStatusPackages } from './dpkg-status.ts';
import { parseOsRelease, type OsRelease } from './os-release.ts';
import { sbomOverBudget, type SbomBudgets } from './sbom-budgets.ts';

/** One package-database file (or os-release) a layer writes, parsed. */
export interface LayerDatabaseFile {
  path: string;
  packages: DatabasePackage[];
  /** For an os-release file: what it says. */
  osRelease?: OsRelease;
}

/**
 * What one layer does to the image's package databases: small (the packages its database files
 * list), plain data (JSON), and a function of the layer's bytes alone, so it can be cached by
 * diff_id. Applied over the layers below: first `removed` and `opaque` hide what they had,
 * then `files` are written.
 */
export interface LayerDatabases {
  /** Paths whose lower files (themselves and all under them) this layer removes: its whiteouts, and its entries that are not directories. */
  removed: string[];
  /** Directories whose lower contents this layer hides (`.wh..wh..opq`). */
  opaque: string[];
  /** Database files this layer writes, sorted by path. */
  files: LayerDatabaseFile[];
}

export interface LayerDatabasesOptions {
  budgets: SbomBudgets;
  tarLimits?: Partial<TarIndexLimits>;
  signal?: AbortSignal;
}

interface FoundFile {
  kind: DatabaseKind;
  header: IndexedTarEntry;
  /** A hard link's target (the layer's own earlier entry), resolved after the pass. */
  linkTo?: string;
}

function split(path: string): { dir: string; base: string } {
  const slash = path.lastIndexOf('/');
  return slash === -1 ? { dir: '', base: path } : { dir: path.slice(0, slash), base: path.slice(slash + 1) };
}

function join(dir: string, base: string): string {
  return dir ? `${dir}/${base}` : base;
}

/** The entries of the layer's tar as they are read (nothing kept), format errors said of `what`. */
async function* layerEntries(store: BlobStore, diffId: Digest, what: string, opts: LayerDatabasesOptions): AsyncGenerator<{ path: string; header: IndexedTarEntry }> {
  try {
    for await (const header of indexTar(await store.open(diffId), opts.tarLimits)) {
      opts.signal?.throwIfAborted();
      yield { path: normalizeLayerPath(header.name, `${what}: entry`), header };
    }
  } catch (err) {
    if (err instanceof TarFormatError) throw new LayerInputError(`${what} is not a valid tar: ${err.message}`, { cause: err });
    throw err;
  }
}

/**
 * Reads one stored layer (an uncompressed tar, by diff_id) for its package databases: one
 * streaming pass over its headers keeps only the entries that touch a database path (O(1)
 * memory per other entry), then reads just those files' bytes by range. Never unpacks. A
 * database file that is a hard link is read from its target (a second pass over the headers,
 * only then). A symlink, directory or device where a database was removes it.
 */
export async function readLayerDatabases(store: BlobStore, diffId: Digest, opts: LayerDatabasesOptions): Promise<LayerDatabases> {
  const { budgets } = opts;
  const what = `layer ${diffId}`;
  const removed = new Set<string>();
  const opaque = new Set<string>();
  const found = new Map<string, FoundFile>();

  for await (const { path, header } of layerEntries(store, diffId, what, opts)) {
    const { dir, base } = split(path);
    if (base === OPAQUE_MARKER) {
      if (touchesDatabases(dir)) opaque.add(dir);
      continue;
    }
    if (base.startsWith(WHITEOUT_PREFIX)) {
      const target = join(dir, base.slice(WHITEOUT_PREFIX.length));
      if (touchesDatabases(target)) removed.add(target);
      continue;
    }
    if (path === '' || !touchesDatabases(path)) continue;
    const kind = databaseKind(path);
    // A directory merges with the one below; anything else replaces what was there, and all under it.
    if (header.type !== 'directory' || kind) removed.add(path);
    if (!kind) continue;
    if (header.type === 'file') {
      if (header.size > budgets.maxDatabaseBytes) throw sbomOverBudget(budgets, 'maxDatabaseBytes', `${what}: /${printable(path)} has ${header.size} bytes`);
      found.set(path, { kind, header });
    } else if (header.type === 'link') {
      found.set(path, { kind, header, linkTo: normalizeLayerPath(header.linkname, `${what}: hard link`) });
    } else {
      found.delete(path);
    }
    if (found.size > budgets.maxPackages) throw sbomOverBudget(budgets, 'maxPackages', `${what}: more than ${budgets.maxPackages} package-database files`);
  }
  await resolveHardLinks(store, diffId, what, found, opts);

  let bytes = 0;
  for (const { header } of found.values()) bytes += header.size;
  if (bytes > budgets.maxDatabaseBytes) throw sbomOverBudget(budgets, 'maxDatabaseBytes', `${what}: its package databases have ${bytes} bytes`);

  const files: LayerDatabaseFile[] = [];
  let packages = 0;
  const reader = new BlobRangeReader(store);
  try {
    // In the order they lie in the tar: one sequential read.
    for (const [path, { kind, header }] of [...found].sort((a, b) => a[1].header.dataOffset - b[1].header.dataOffset)) {
      opts.signal?.throwIfAborted();
      const chunks: Buffer[] = [];
      for await (const chunk of readStoredData(reader, storedDataOf(diffId, header), header.size)) chunks.push(chunk);
      const file = parseDatabase(path, kind, Buffer.concat(chunks), `${what}: /${printable(path)}`, budgets);
      packages += file.packages.length;
      if (packages > budgets.maxPackages) throw sbomOverBudget(budgets, 'maxPackages', `${what}: more than ${budgets.maxPackages} packages`);
      files.push(file);
    }
  } finally {
    reader.close();
  }
  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { removed: [...removed].sort(), opaque: [...opaque].sort(), files };
}

/** Hard links' targets are earlier entries of the same tar: one more pass over the headers finds them. */
async function resolveHardLinks(store: BlobStore, diffId: Digest, what: string, found: Map<string, FoundFile>, opts: LayerDatabasesOptions): Promise<void> {
  const wanted = new Set<string>();
  for (const file of found.values()) if (file.linkTo !== undefined) wanted.add(file.linkTo);
  if (wanted.size === 0) return;
  const targets = new Map<string, IndexedTarEntry>();
  for await (const { path, header } of layerEntries(store, diffId, what, opts)) {
    if (wanted.has(path) && header.type === 'file') targets.set(path, header);
  }
  for (const [path, file] of found) {
    if (file.linkTo === undefined) continue;
    const target = targets.get(file.linkTo);
    if (!target) throw new LayerInputError(`${what}: /${printable(path)} is a hard link to /${printable(file.linkTo)}, which is not a file of the layer`);
    if (target.size > opts.budgets.maxDatabaseBytes) throw sbomOverBudget(opts.budgets, 'maxDatabaseBytes', `${what}: /${printable(path)} has ${target.size} bytes`);
    found.set(path, { kind: file.kind, header: target });
  }
}

function parseDatabase(path: string, kind: DatabaseKind, data: Buffer, what: string, budgets: SbomBudgets): LayerDatabaseFile {
  switch (kind) {
    case 'dpkg-status':
      return { path, packages: dpkgStatusPackages(data, what, budgets, { statusless: 'not-installed' }) };
    case 'dpkg-status-d':
      return { path, packages: dpkgStatusPackages(data, what, budgets, { statusless: 'installed' }) };
    case 'apk-installed':
      return { path, packages: apkInstalledPackages(data, what, budgets) };
    case 'os-release':
      return { path, packages: [], osRelease: parseOsRelease(data, what, budgets) };
  }
}
