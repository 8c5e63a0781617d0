import { encodeName } from './tar-name.ts';
import { LayerInputError, type LayerEntry } from './layer-entry.ts';
import { printable } from './printable.ts';
import { DirNode, entryOf, join, type NodeEntry, type TreeNode } from './fs-tree-node.ts';

// Reading an FsTree out (fs-tree.ts): hard links resolved, entries in GNU tar's order.

/** How much a hard-link chain may hop before it is called a cycle. */
const MAX_LINK_HOPS = 64;

/** Every hard link's file (links to links followed), memoised: O(links × path length). */
export function resolveHardLinks(root: DirNode, lookup: (path: string) => TreeNode | undefined): Map<NodeEntry, NodeEntry> {
  const fileOf = new Map<NodeEntry, NodeEntry>();
  const resolve = (link: NodeEntry, path: string): void => {
    const chain: NodeEntry[] = [];
    let current = link;
    for (let hops = 0; hops < MAX_LINK_HOPS; hops++) {
      const found = fileOf.get(current) ?? lookup(current.linkname);
      if (!found || found === root) {
        throw new LayerInputError(`hard link '${printable(path)}' points to '${printable(current.linkname)}', which is not in the layer`);
      }
      const target = entryOf(found);
      chain.push(current);
      if (target.type === 'file') {
        for (const member of chain) fileOf.set(member, target);
        return;
      }
      if (target.type !== 'link') {
        throw new LayerInputError(`hard link '${printable(path)}' points to '${printable(current.linkname)}', which is a ${target.type}, not a regular file`);
      }
      current = target;
    }
    throw new LayerInputError(`hard link '${printable(path)}' is part of a cycle`);
  };
  // Depth first with one iterator per level: memory O(depth), each node visited once.
  const stack: Array<{ prefix: string; children: Iterator<[string, TreeNode]> }> = [{ prefix: '', children: root.children.entries() }];
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

/**
 * The tree's entries in sortedChildren order, each group of hard links to one file (`fileOf`)
 * written as the file at its first path and links to it from the others.
 */
export function* entriesInOrder(root: DirNode, fileOf: Map<NodeEntry, NodeEntry>): IterableIterator<LayerEntry> {
  const linked = new Set(fileOf.values());
  /** The first path of each group of hard links read out so far: the one holding the data. */
  const firstPath = new Map<NodeEntry, string>();
  const stack: Array<{ prefix: string; items: SortedItem[]; next: number }> = [{ prefix: '', items: sortedChildren(root), next: 0 }];
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
