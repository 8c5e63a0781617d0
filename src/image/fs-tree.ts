import { BudgetExceededError } from '../budget.ts';
import { BuildUsage } from './build-usage.ts';
import { LayerInputError, type LayerEntry } from './layer-entry.ts';
import { printable } from './printable.ts';
import { xattrBytes } from './tar-entry.ts';
import { TAR_BUDGET_SETTINGS } from './tar-limits.ts';
import { encodeName } from './tar-name.ts';

export interface DirDefaults {
  mode: number;
  uid: number;
  gid: number;
}

/** What the tree keeps of an entry: all but its path, which the entry's place in the tree says. */
type NodeEntry = Omit<LayerEntry, 'path'>;

/** A directory: its entry, its children by name, and totals of everything below it. */
class DirNode {
  readonly children = new Map<string, TreeNode>();
  entriesBelow = 0;
  dataBytesBelow = 0;
  xattrBytesBelow = 0;

  constructor(public entry: NodeEntry) {}
}

/** Anything but a directory is its entry alone: most of a tree's nodes, kept small. */
type TreeNode = DirNode | NodeEntry;

function entryOf(node: TreeNode): NodeEntry {
  return node instanceof DirNode ? node.entry : node;
}

/** How much a hard-link chain may hop before it is called a cycle. */
const MAX_LINK_HOPS = 64;
const NO_XATTRS: Readonly<Record<string, string>> = Object.freeze({});

/** Bytes of an entry's extended attributes; a shared (frozen) set, e.g. a tar's global ones, is summed once. */
const frozenXattrBytes = new WeakMap<object, number>();
function xattrBytesOf(xattrs: Readonly<Record<string, string>>): number {
  const known = frozenXattrBytes.get(xattrs);
  if (known !== undefined) return known;
  let bytes = 0;
  for (const name in xattrs) bytes += xattrBytes(name, xattrs[name] as string);
  if (Object.isFrozen(xattrs)) frozenXattrBytes.set(xattrs, bytes);
  return bytes;
}

/**
 * A name of its own: a part of a longer string may keep all of it alive (V8's sliced
 * strings), and a tree must not hold its entries' full paths.
 */
function ownName(name: string): string {
  return Buffer.from(name, 'utf16le').toString('utf16le');
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
   * Entries in GNU tar's `--sort=name` order (sortedChildren: parents first, each directory's
   * subtree before its next sibling), with hard
   * links resolved: each group of links to one file is written as the file at the group's
   * first path and links to it from the others, since a tar hard link may only point back.
   * Links are checked now (a dangling one throws here); paths are made as the result is read.
   */
  sortedEntries(): IterableIterator<LayerEntry> {
    return this.inOrder(this.resolveLinks());
  }

  /** Every hard link's file (links to links followed), memoised: O(links × path length). */
  private resolveLinks(): Map<NodeEntry, NodeEntry> {
    const fileOf = new Map<NodeEntry, NodeEntry>();
    const resolve = (link: NodeEntry, path: string): void => {
      const chain: NodeEntry[] = [];
      let current = link;
      for (let hops = 0; hops < MAX_LINK_HOPS; hops++) {
        const found = fileOf.get(current) ?? this.lookup(current.linkname);
        if (!found || found === this.root) {
          throw new LayerInputError(`hard link '${printable(path)}' points to '${printable(current.linkname)}', which is not in the layer`);
        }
        const target = entryOf(found);
        chain.push(current);
        if (target.type === 'file') {
          for (const member of chain) fileOf.set(member, target);
          return;
        }
        if (target.type !== 'link') {
          throw new LayerInputError(
            `hard link '${printable(path)}' points to '${printable(current.linkname)}', which is a ${target.type}, not a regular file`,
          );
        }
        current = target;
      }
      throw new LayerInputError(`hard link '${printable(path)}' is part of a cycle`);
    };
    // Depth first with one iterator per level: memory O(depth), each node visited once.
    const stack: Array<{ prefix: string; children: Iterator<[string, TreeNode]> }> = [{ prefix: '', children: this.root.children.entries() }];
    for (let frame = stack.at(-1); frame; frame = stack.at(-1)) {
      const next = frame.children.next();
      if (next.done) {
        stack.pop();
        continue;
      }
      const [name, node] = next.value;
      if (node instanceof DirNode) {
        if (node.children.size > 0) stack.push({ prefix: join(frame.prefix, name), children: node.children.entries() });
      } else if (node.type === 'link' && !fileOf.has(node)) {
        resolve(node, join(frame.prefix, name));
      }
    }
    return fileOf;
  }

  private *inOrder(fileOf: Map<NodeEntry, NodeEntry>): IterableIterator<LayerEntry> {
    const linked = new Set(fileOf.values());
    /** The first path of each group of hard links read out so far: the one holding the data. */
    const firstPath = new Map<NodeEntry, string>();
    const stack: Array<{ prefix: string; items: SortedItem[]; next: number }> = [{ prefix: '', items: sortedChildren(this.root), next: 0 }];
    for (let frame = stack.at(-1); frame; frame = stack.at(-1)) {
      const item = frame.items[frame.next++];
      if (!item) {
        stack.pop();
        continue;
      }
      const path = join(frame.prefix, item.name);
      if (item.node instanceof DirNode) {
        yield { ...item.node.entry, path };
        if (item.node.children.size > 0) stack.push({ prefix: path, items: sortedChildren(item.node), next: 0 });
        continue;
      }
      const file = fileOf.get(item.node) ?? (linked.has(item.node) ? item.node : undefined);
      if (!file) {
        yield { ...item.node, path };
        continue;
      }
      const first = firstPath.get(file);
      if (first === undefined) {
        firstPath.set(file, path);
        yield { ...file, path };
      } else {
        yield { ...file, path, type: 'link', size: 0, linkname: first, data: undefined };
      }
    }
  }
}

/** A directory's child with the key it sorts by. */
interface SortedItem {
  key: Buffer;
  name: string;
  node: TreeNode;
}

/**
 * A directory's children in the order of their names' bytes (tar-name.ts; JS's `<` would
 * compare UTF-16 code units). Each directory is followed by everything under it before its
 * next sibling (GNU tar's `--sort=name`, what nixpkgs dockerTools writes): with whole paths in
 * byte order instead, `a-b` would land between `a` and `a/c`, and GNU tar, which sets a
 * directory's mtime when it leaves it, would extract `a` with the wrong time. O(k log k).
 */
function sortedChildren(dir: DirNode): SortedItem[] {
  const items: SortedItem[] = [];
  for (const [name, node] of dir.children) items.push({ key: encodeName(name), name, node });
  items.sort((a, b) => Buffer.compare(a.key, b.key));
  return items;
}

function join(dir: string, name: string): string {
  return dir ? `${dir}/${name}` : name;
}
