import { BudgetExceededError } from '../../budget.ts';
import type { BlobStore } from '../../store/blob-store.ts';
import { BuildUsage, type LayerBudgets } from '../build-usage.ts';
import type { Image } from '../image.ts';
import { LayerInputError, normalizeLayerPath } from '../layer-entry.ts';
import type { Layer } from '../layer.ts';
import { printable } from '../printable.ts';
import { OPAQUE_MARKER, WHITEOUT_PREFIX } from '../overlay-form.ts';
import type { EntryType } from '../tar-entry.ts';
import { storedDataOf, type StoredData } from '../stored-data.ts';
import { indexTar, TarFormatError, type IndexedTarEntry } from '../tar-index.ts';
import { encodeName } from '../tar-name.ts';
import { plannedTar, type PlannedEntry, type SinkOutput } from './tar-plan.ts';

/** aufs' private entries (`.wh..wh..plnk/`, …) that are neither files nor whiteouts. */
const WHITEOUT_META_PREFIX = `${WHITEOUT_PREFIX}${WHITEOUT_PREFIX}`;

interface Meta {
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  xattrs: Record<string, string>;
}

/** A regular file's identity: hard links to it share this object (and so its data and metadata). */
interface Inode {
  meta: Meta;
  size: number;
  data?: StoredData;
}

interface DirNode {
  type: 'directory';
  meta: Meta;
  children: Map<string, Node>;
}
interface FileNode {
  type: 'file';
  inode: Inode;
}
interface OtherNode {
  type: Exclude<EntryType, 'directory' | 'file' | 'link'>;
  meta: Meta;
  linkname: string;
  devmajor: number;
  devminor: number;
}
type Node = DirNode | FileNode | OtherNode;

function splitPath(path: string): { dir: string; base: string } {
  const slash = path.lastIndexOf('/');
  return slash === -1 ? { dir: '', base: path } : { dir: path.slice(0, slash), base: path.slice(slash + 1) };
}

function metaOf(h: IndexedTarEntry): Meta {
  return { mode: h.mode, uid: h.uid, gid: h.gid, mtime: h.mtime, xattrs: h.xattrs };
}

/**
 * The union of an image's layers, as a container runtime would see it: each layer's
 * deletions (`.wh.NAME`, `DIR/.wh..wh..opq`) apply to the layers below it, then its entries
 * go on top, a later entry replacing an earlier one at its path (a non-directory replacing a
 * directory drops what was below it; a directory over a directory only changes metadata).
 * Only headers and data offsets are held; hard links share an inode object, so a link keeps
 * the file it was made to even when a later layer replaces the path it was made through.
 */
class MergedTree {
  readonly root: DirNode = { type: 'directory', meta: { mode: 0o755, uid: 0, gid: 0, mtime: 0, xattrs: {} }, children: new Map() };

  lookup(path: string): Node | undefined {
    if (path === '') return this.root;
    let node: Node = this.root;
    for (const part of path.split('/')) {
      if (node.type !== 'directory') return undefined;
      const next: Node | undefined = node.children.get(part);
      if (!next) return undefined;
      node = next;
    }
    return node;
  }

  /** The directory `dir`, creating missing (or non-directory) components as Docker's applier does. */
  ensureDir(dir: string, mtime: number): DirNode {
    let node = this.root;
    if (dir === '') return node;
    for (const part of dir.split('/')) {
      let next = node.children.get(part);
      if (next?.type !== 'directory') {
        next = { type: 'directory', meta: { mode: 0o755, uid: 0, gid: 0, mtime, xattrs: {} }, children: new Map() };
        node.children.set(part, next);
      }
      node = next;
    }
    return node;
  }

  remove(path: string): void {
    const { dir, base } = splitPath(path);
    const parent = this.lookup(dir);
    if (parent?.type === 'directory') parent.children.delete(base);
  }

  set(path: string, node: Node, mtime: number): void {
    const { dir, base } = splitPath(path);
    const parent = this.ensureDir(dir, mtime);
    const existing = parent.children.get(base);
    if (node.type === 'directory' && existing?.type === 'directory') existing.meta = node.meta;
    else parent.children.set(base, node);
  }

  /**
   * Every path but the root's, with its node: each directory's children by their names' bytes
   * (tar-name.ts), and each directory followed by everything under it (GNU tar's
   * `--sort=name`, as fs-tree.ts writes layers).
   */
  sorted(): Array<{ path: string; node: Node }> {
    const out: Array<{ path: string; node: Node }> = [];
    const walk = (dir: DirNode, prefix: string) => {
      const children = [...dir.children].map(([name, node]) => ({ name, node, key: encodeName(name) }));
      children.sort((a, b) => Buffer.compare(a.key, b.key));
      for (const { name, node } of children) {
        const path = prefix ? `${prefix}/${name}` : name;
        out.push({ path, node });
        if (node.type === 'directory') walk(node, path);
      }
    };
    walk(this.root, '');
    return out;
  }
}

async function indexLayer(layer: Pick<Layer, 'diffId'>, store: BlobStore, i: number, usage: BuildUsage): Promise<Array<{ path: string; header: IndexedTarEntry }>> {
  const entries: Array<{ path: string; header: IndexedTarEntry }> = [];
  try {
    for await (const header of indexTar(await store.open(layer.diffId), usage.tarLimits)) {
      usage.addEntries(1);
      entries.push({ path: normalizeLayerPath(header.name, `layer ${i}: entry`), header });
    }
  } catch (err) {
    if (err instanceof TarFormatError) throw new LayerInputError(`layer ${i} (${layer.diffId}) is not a valid tar: ${err.message}`, { cause: err });
    if (err instanceof BudgetExceededError) throw err.within(`layer ${i} (${layer.diffId})`);
    throw err;
  }
  return entries;
}

function applyLayer(tree: MergedTree, layer: Pick<Layer, 'diffId'>, entries: Array<{ path: string; header: IndexedTarEntry }>, i: number): void {
  // Deletions first, against the layers below only (OCI image spec: whiteouts never hide
  // entries of their own layer, whatever the order they appear in).
  for (const { path, header } of entries) {
    const { dir, base } = splitPath(path);
    if (base === OPAQUE_MARKER) {
      const node = tree.lookup(dir);
      if (node?.type === 'directory') node.children.clear();
    } else if (base.startsWith(WHITEOUT_META_PREFIX)) {
      continue;
    } else if (base.startsWith(WHITEOUT_PREFIX)) {
      const name = base.slice(WHITEOUT_PREFIX.length);
      if (!name) throw new LayerInputError(`layer ${i}: invalid whiteout '${printable(header.name)}' (empty name)`);
      tree.remove(dir ? `${dir}/${name}` : name);
    }
  }

  for (const { path, header } of entries) {
    if (path === '') continue; // the layer's root: not part of an export (nor of `docker export`)
    const { base } = splitPath(path);
    if (base.startsWith(WHITEOUT_PREFIX)) continue;
    const meta = metaOf(header);
    switch (header.type) {
      case 'directory':
        tree.set(path, { type: 'directory', meta, children: new Map() }, header.mtime);
        break;
      case 'file': {
        const inode: Inode = { meta, size: header.size };
        if (header.size > 0) inode.data = storedDataOf(layer.diffId, header);
        tree.set(path, { type: 'file', inode }, header.mtime);
        break;
      }
      case 'link': {
        // A hard link names an earlier entry of its layer; resolving it against the tree as
        // it stands is what extracting the layer over the lower ones does (link(2)).
        const targetPath = normalizeLayerPath(header.linkname, `layer ${i}: hard link`);
        const target = tree.lookup(targetPath);
        if (!target || targetPath === '') {
          throw new LayerInputError(`layer ${i}: hard link '${printable(header.name)}' points to '${printable(header.linkname)}', which does not exist`);
        }
        if (target.type === 'directory') {
          throw new LayerInputError(`layer ${i}: hard link '${printable(header.name)}' points to the directory '${printable(header.linkname)}'`);
        }
        // To a file: the same inode. To a symlink, device or fifo: an equal copy of it.
        tree.set(path, target.type === 'file' ? { type: 'file', inode: target.inode } : { ...target }, header.mtime);
        break;
      }
      default:
        tree.set(path, { type: header.type, meta, linkname: header.linkname, devmajor: header.devmajor, devminor: header.devminor }, header.mtime);
    }
  }
}

/**
 * The flattened filesystem of layers (bottom first; uncompressed tars in the store) as tar
 * entries: in GNU tar's `--sort=name` order (MergedTree.sorted), each with its own metadata (mode, owner, mtime, xattrs),
 * whiteouts applied and gone, and hard links kept: the first path of a link group in that
 * order holds the data, the others link to it. Data is referenced by range in the layer blobs.
 */
export async function flattenLayers(layers: ReadonlyArray<Pick<Layer, 'diffId'>>, store: BlobStore, usage = new BuildUsage()): Promise<PlannedEntry[]> {
  const tree = new MergedTree();
  for (const [i, layer] of layers.entries()) {
    applyLayer(tree, layer, await indexLayer(layer, store, i, usage), i);
  }

  const firstPathOf = new Map<Inode, string>();
  return tree.sorted().map(({ path, node }): PlannedEntry => {
    if (node.type === 'directory') return { header: { ...node.meta, name: `${path}/`, type: 'directory', size: 0 } };
    if (node.type === 'file') {
      const { inode } = node;
      const first = firstPathOf.get(inode);
      if (first !== undefined) return { header: { ...inode.meta, name: path, type: 'link', size: 0, linkname: first } };
      firstPathOf.set(inode, path);
      const header = { ...inode.meta, name: path, type: 'file' as const, size: inode.size };
      return inode.data ? { header, data: inode.data } : { header };
    }
    return {
      header: { ...node.meta, name: path, type: node.type, size: 0, linkname: node.linkname, devmajor: node.devmajor, devminor: node.devminor },
    };
  });
}

export interface RootfsOptions {
  store: BlobStore;
  /** What the image's layers may hold (entries of all of them: BALER_MAX_BUILD_ENTRIES); absent: the defaults. */
  budgets?: LayerBudgets;
}

/**
 * dockerTools' `exportImage`: the image's flattened filesystem as one tar, computed by
 * streaming over its stored layers (no VM, no extraction). Equal to what `docker export` of a
 * container of the image gives, less what Docker adds to every container (`/.dockerenv`,
 * `/etc/{hostname,hosts,resolv.conf,mtab}`, `/dev/{console,pts,shm}`, `/proc`, `/sys`).
 * Deterministic; resolves with the exact size once the layers are indexed.
 */
export async function writeRootfs(image: Image, opts: RootfsOptions): Promise<SinkOutput> {
  return plannedTar(await flattenLayers(image.layers, opts.store, new BuildUsage(opts.budgets)), opts.store, 'application/x-tar');
}
