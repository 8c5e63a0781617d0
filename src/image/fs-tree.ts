import { LayerInputError, type LayerEntry } from './layer-entry.ts';

export interface DirDefaults {
  mode: number;
  uid: number;
  gid: number;
}

/**
 * The files of one layer while its contents are merged: later entries replace earlier ones
 * at the same path, as unpacking one after the other would. Missing parent directories are
 * created; replacing a directory with anything else drops what was below it.
 */
export class FsTree {
  private readonly entries = new Map<string, LayerEntry>();

  constructor(private readonly dirDefaults: DirDefaults) {}

  get size(): number {
    return this.entries.size;
  }

  get(path: string): LayerEntry | undefined {
    return this.entries.get(path);
  }

  add(entry: LayerEntry): void {
    if (entry.path === '') {
      // The root itself: only a directory makes sense, and the layer has no root entry.
      if (entry.type !== 'directory') throw new LayerInputError('the layer root must be a directory');
      return;
    }
    this.ensureParents(entry.path);
    const existing = this.entries.get(entry.path);
    if (existing?.type === 'directory' && entry.type !== 'directory') this.removeBelow(entry.path);
    this.entries.set(entry.path, entry);
  }

  private ensureParents(path: string): void {
    let end = path.indexOf('/');
    while (end !== -1) {
      const parent = path.slice(0, end);
      const existing = this.entries.get(parent);
      if (existing?.type !== 'directory') {
        if (existing) this.removeBelow(parent);
        this.entries.set(parent, {
          path: parent,
          type: 'directory',
          ...this.dirDefaults,
          size: 0,
          linkname: '',
          devmajor: 0,
          devminor: 0,
          xattrs: {},
        });
      }
      end = path.indexOf('/', end + 1);
    }
  }

  private removeBelow(dir: string): void {
    const prefix = `${dir}/`;
    for (const key of this.entries.keys()) if (key.startsWith(prefix)) this.entries.delete(key);
  }

  /**
   * Entries in bytewise path order (which puts every parent before its children), with hard
   * links resolved: each group of links to one file is written as the file at the group's
   * first path and links to it from the others, since a tar hard link may only point back.
   */
  sortedEntries(): LayerEntry[] {
    const keyed = [...this.entries.values()].map((entry) => ({ entry, key: Buffer.from(entry.path) }));
    keyed.sort((a, b) => Buffer.compare(a.key, b.key));
    const sorted = keyed.map((k) => k.entry);

    const groups = new Map<string, LayerEntry[]>();
    for (const entry of sorted) {
      if (entry.type !== 'link') continue;
      const target = this.resolveLinkTarget(entry);
      const group = groups.get(target.path) ?? [target];
      group.push(entry);
      groups.set(target.path, group);
    }
    if (groups.size === 0) return sorted;

    const replaced = new Map<string, LayerEntry>();
    for (const group of groups.values()) {
      const file = group[0] as LayerEntry;
      const first = group.reduce((a, b) => (Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)) <= 0 ? a : b));
      for (const member of group) {
        replaced.set(
          member.path,
          member === first
            ? { ...file, path: first.path }
            : { ...file, path: member.path, type: 'link', size: 0, linkname: first.path, data: undefined },
        );
      }
    }
    return sorted.map((entry) => replaced.get(entry.path) ?? entry);
  }

  private resolveLinkTarget(link: LayerEntry): LayerEntry {
    let current = link;
    for (let hops = 0; hops < 64; hops++) {
      const target = this.entries.get(current.linkname);
      if (!target) throw new LayerInputError(`hard link '${link.path}' points to '${current.linkname}', which is not in the layer`);
      if (target.type === 'file') return target;
      if (target.type !== 'link') {
        throw new LayerInputError(`hard link '${link.path}' points to '${current.linkname}', which is a ${target.type}, not a regular file`);
      }
      current = target;
    }
    throw new LayerInputError(`hard link '${link.path}' is part of a cycle`);
  }
}
