import { BudgetExceededError } from '../budget.ts';
import { BuildUsage } from './build-usage.ts';
import { DirNode, entryOf, NO_XATTRS, ownName, xattrBytesOf, type NodeEntry, type TreeNode } from './fs-tree-node.ts';
import { entriesInOrder, resolveHardLinks } from './fs-tree-order.ts';
import { LayerInputError, type LayerEntry } from './layer-entry.ts';
import { TAR_BUDGET_SETTINGS } from './tar-limits.ts';

export interface DirDefaults {
  mode: number;
  uid: number;
  gid: number;
}

/**
 * The files of one layer while its contents are merged: later entries replace earlier ones
 * at the same path, as unpacking one after the other would. Missing parent directories are
 * created; replacing a directory with anything else drops what was below it.
 *
 * A tree of directory nodes, each entry kept under its own name (paths are built only when
 * entries are read out). Adding an entry costs O(its path's components); dropping a subtree
 * is O(1), its totals (entries, bytes) taken off the directories above it on the way back
 * up. So any sequence of n adds is O(total path length), and reading the entries out in
 * order O(n log n). Entries, implicit directories included, count against the layer's budget
 * and the build's (`usage`).
 */
export class FsTree {
  private readonly root = new DirNode({ type: 'directory', mode: 0o755, uid: 0, gid: 0, size: 0, linkname: '', devmajor: 0, devminor: 0, xattrs: NO_XATTRS });
  /** One shared entry for every directory the tree makes itself: entries are never changed in place. */
  private readonly implicitDir: NodeEntry;

  constructor(
    dirDefaults: DirDefaults,
    private readonly usage: BuildUsage = new BuildUsage(),
  ) {
    this.implicitDir = Object.freeze({ type: 'directory', ...dirDefaults, size: 0, linkname: '', devmajor: 0, devminor: 0, xattrs: NO_XATTRS });
  }

  /** Entries in the tree, implicit directories included. */
  get size(): number {
    return this.root.entriesBelow;
  }

  /** Bytes of the regular files' data. */
  get dataBytes(): number {
    return this.root.dataBytesBelow;
  }

  /** What writing the tree as a layer costs the build's layer-bytes budget: data and extended attributes. */
  get layerBytes(): number {
    return this.root.dataBytesBelow + this.root.xattrBytesBelow;
  }

  get(path: string): LayerEntry | undefined {
    const node = this.lookup(path);
    return node && node !== this.root ? { ...entryOf(node), path } : undefined;
  }

  add(entry: LayerEntry): void {
    if (entry.path === '') {
      // The root itself: only a directory makes sense, and the layer has no root entry.
      if (entry.type !== 'directory') throw new LayerInputError('the layer root must be a directory');
      return;
    }
    const { path, ...fields } = entry;
    const names = path.split('/');
    const last = names.length - 1;
    // The directories from the root to the entry's parent, and how what is directly below
    // each changes: a change at level i counts for directories 0..i.
    const dirs: DirNode[] = [this.root];
    const entriesChange = new Array<number>(names.length).fill(0);
    const dataChange = new Array<number>(names.length).fill(0);
    const xattrChange = new Array<number>(names.length).fill(0);
    let added = 1;

    for (let i = 0; i < last; i++) {
      const dir = dirs[i] as DirNode;
      const name = names[i] as string;
      let child = dir.children.get(name);
      if (!(child instanceof DirNode)) {
        // A missing parent is made; one that is not a directory is replaced by one.
        if (child) {
          entriesChange[i] = -1;
          dataChange[i] = -child.size;
          xattrChange[i] = -xattrBytesOf(child.xattrs);
        }
        entriesChange[i] = (entriesChange[i] as number) + 1;
        const made = new DirNode(this.implicitDir);
        dir.children.set(child ? name : ownName(name), made);
        child = made;
        added++;
      }
      dirs.push(child);
    }

    const parent = dirs[last] as DirNode;
    const name = names[last] as string;
    const existing = parent.children.get(name);
    if (existing instanceof DirNode && fields.type === 'directory') {
      // A directory over a directory changes its metadata only; what is below stays.
      xattrChange[last] = xattrBytesOf(fields.xattrs) - xattrBytesOf(existing.entry.xattrs);
      existing.entry = fields;
    } else {
      if (existing instanceof DirNode) {
        entriesChange[last] = -1 - existing.entriesBelow;
        dataChange[last] = -existing.dataBytesBelow;
        xattrChange[last] = -xattrBytesOf(existing.entry.xattrs) - existing.xattrBytesBelow;
      } else if (existing) {
        entriesChange[last] = -1;
        dataChange[last] = -existing.size;
        xattrChange[last] = -xattrBytesOf(existing.xattrs);
      }
      entriesChange[last] = (entriesChange[last] as number) + 1;
      dataChange[last] = (dataChange[last] as number) + fields.size;
      xattrChange[last] = (xattrChange[last] as number) + xattrBytesOf(fields.xattrs);
      parent.children.set(existing ? name : ownName(name), fields.type === 'directory' ? new DirNode(fields) : fields);
    }

    let entries = 0;
    let data = 0;
    let xattrs = 0;
    for (let i = last; i >= 0; i--) {
      const dir = dirs[i] as DirNode;
      entries += entriesChange[i] as number;
      data += dataChange[i] as number;
      xattrs += xattrChange[i] as number;
      dir.entriesBelow += entries;
      dir.dataBytesBelow += data;
      dir.xattrBytesBelow += xattrs;
    }

    this.usage.addEntries(added);
    const limit = this.usage.budgets.maxLayerEntries;
    if (this.size > limit) {
      throw new BudgetExceededError(TAR_BUDGET_SETTINGS.maxEntries, limit, `more than ${limit} entries in one layer (directories it implies included)`);
    }
  }

  private lookup(path: string): TreeNode | undefined {
    if (path === '') return this.root;
    let node: TreeNode | undefined = this.root;
    for (const name of path.split('/')) {
      node = node instanceof DirNode ? node.children.get(name) : undefined;
      if (!node) return undefined;
    }
    return node;
  }

  /**
   * Entries in GNU tar's `--sort=name` order (fs-tree-order.ts: parents first, each directory's
   * subtree before its next sibling), with hard links resolved: each group of links to one file is written as the file at the group's
   * first path and links to it from the others, since a tar hard link may only point back.
   * Links are checked now (a dangling one throws here); paths are made as the result is read.
   */
  sortedEntries(): IterableIterator<LayerEntry> {
    return entriesInOrder(
      this.root,
      resolveHardLinks(this.root, (path) => this.lookup(path)),
    );
  }
}
