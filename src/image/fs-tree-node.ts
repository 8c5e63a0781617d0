import type { LayerEntry } from './layer-entry.ts';
import { xattrBytes } from './tar-entry.ts';

// The nodes of an FsTree (fs-tree.ts) and what it counts of them.

/** What the tree keeps of an entry: all but its path, which the entry's place in the tree says. */
export type NodeEntry = Omit<LayerEntry, 'path'>;

/** A directory: its entry, its children by name, and totals of everything below it. */
export class DirNode {
  readonly children = new Map<string, TreeNode>();
  entriesBelow = 0;
  dataBytesBelow = 0;
  xattrBytesBelow = 0;

  constructor(public entry: NodeEntry) {}
}

/** Anything but a directory is its entry alone: most of a tree's nodes, kept small. */
export type TreeNode = DirNode | NodeEntry;

export function entryOf(node: TreeNode): NodeEntry {
  return node instanceof DirNode ? node.entry : node;
}

export const NO_XATTRS: Readonly<Record<string, string>> = Object.freeze({});

/** Bytes of an entry's extended attributes; a shared (frozen) set, e.g. a tar's global ones, is summed once. */
const frozenXattrBytes = new WeakMap<object, number>();
export function xattrBytesOf(xattrs: Readonly<Record<string, string>>): number {
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
export function ownName(name: string): string {
  return Buffer.from(name, 'utf16le').toString('utf16le');
}

/** A child's path under `dir` (the root's children: their names). */
export function join(dir: string, name: string): string {
  return dir ? `${dir}/${name}` : name;
}
