/**
 * FsTree, the files of one layer (issue 12, attack 3): against the map it replaces (kept
 * below as the reference), for order, hard links and totals; and its cost under the
 * shapes that made that map quadratic or hold every path.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { BudgetExceededError } from '../../src/budget.ts';
import { BuildUsage, DEFAULT_LAYER_BUDGETS } from '../../src/image/build-usage.ts';
import { FsTree, type DirDefaults } from '../../src/image/fs-tree.ts';
import { LayerInputError, type LayerEntry } from '../../src/image/layer-entry.ts';
import { xattrBytes } from '../../src/image/tar-entry.ts';

const DIRS: DirDefaults = { mode: 0o755, uid: 0, gid: 0 };
const NONE = { mode: 0o644, uid: 0, gid: 0, size: 0, linkname: '', devmajor: 0, devminor: 0, xattrs: {} };
const file = (path: string, size = 0): LayerEntry => ({ ...NONE, path, type: 'file', size, ...(size > 0 ? { data: { inline: Buffer.alloc(size) } } : {}) });
const dir = (path: string): LayerEntry => ({ ...NONE, path, type: 'directory', mode: 0o700 });

/** The map FsTree was before (src/image/fs-tree.ts at main): simple, and quadratic. */
class ReferenceTree {
  private readonly entries = new Map<string, LayerEntry>();

  constructor(private readonly dirDefaults: DirDefaults) {}

  values(): LayerEntry[] {
    return [...this.entries.values()];
  }

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
   * Entries in GNU tar's --sort=name order (a path's bytes with '/' as the lowest byte: each
   * directory, then everything under it, then its next sibling), with hard
   * links resolved: each group of links to one file is written as the file at the group's
   * first path and links to it from the others, since a tar hard link may only point back.
   */
  sortedEntries(): LayerEntry[] {
    const keyed = [...this.entries.values()].map((entry) => ({ entry, key: treeKey(entry.path) }));
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
      const first = group.reduce((a, b) => (Buffer.compare(treeKey(a.path), treeKey(b.path)) <= 0 ? a : b));
      for (const member of group) {
        replaced.set(member.path, member === first ? { ...file, path: first.path } : { ...file, path: member.path, type: 'link', size: 0, linkname: first.path, data: undefined });
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

/** A path's sort key in tree order: its bytes, with '/' (0x2f) as 0x00, below every name byte. */
function treeKey(path: string): Buffer {
  return Buffer.from(Buffer.from(path).map((byte) => (byte === 0x2f ? 0 : byte)));
}

/** A small deterministic generator (mulberry32), so that a failure can be replayed. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Names whose bytes sort around '/' (0x2f): ' ' '-' '.' below it, 'a' and 'ü' above.
const NAMES = ['a', 'a-b', 'a.b', 'a b', 'aa', 'b', 'ü', 'A', 'a0'];

function randomEntry(next: () => number, paths: string[], linkable: string[]): LayerEntry {
  const pick = <T>(list: readonly T[]): T => list[Math.floor(next() * list.length)] as T;
  const depth = 1 + Math.floor(next() * 4);
  const path = Array.from({ length: depth }, () => pick(NAMES)).join('/');
  const roll = next();
  const xattrs: Record<string, string> = next() < 0.2 ? { 'user.k': 'v'.repeat(Math.floor(next() * 10)) } : {};
  if (roll < 0.45) return { ...file(path, Math.floor(next() * 5)), xattrs };
  if (roll < 0.8) return { ...dir(path), xattrs };
  if (roll < 0.85) return { ...NONE, path, type: 'symlink', linkname: pick(paths) ?? 'x' };
  // Hard links to what was a file or a link when it was added (it may be replaced since).
  return { ...NONE, path, type: 'link', linkname: pick(linkable) ?? 'x' };
}

function outcome(read: () => LayerEntry[]): LayerEntry[] | string {
  try {
    return read();
  } catch (err) {
    if (err instanceof LayerInputError) return err.message;
    throw err;
  }
}

describe('FsTree against the map it replaces', () => {
  it('gives the same entries in the same order, the same hard-link groups and the same totals', () => {
    let checked = 0;
    let withLinks = 0;
    for (let seed = 1; seed <= 600; seed++) {
      const next = random(seed);
      const tree = new FsTree(DIRS);
      const reference = new ReferenceTree(DIRS);
      const paths: string[] = [];
      const linkable: string[] = [];
      const count = 1 + Math.floor(next() * 60);
      for (let i = 0; i < count; i++) {
        const entry = randomEntry(next, paths, linkable);
        paths.push(entry.path);
        if (entry.type === 'file' || entry.type === 'link') linkable.push(entry.path);
        tree.add(entry);
        reference.add(entry);
      }
      const expected = outcome(() => reference.sortedEntries());
      const got = outcome(() => [...tree.sortedEntries()]);
      // Of several broken links, which one the error names may differ; that there is one may not.
      if (typeof expected === 'string') expect(got, `seed ${seed}`).toMatch(/^hard link '.*' (points to|is part of a cycle)/);
      else expect(got, `seed ${seed}`).toEqual(expected);
      if (typeof expected !== 'string') checked++;
      if (typeof expected !== 'string' && expected.some((e) => e.type === 'link')) withLinks++;
      const entries = reference.values();
      expect(tree.size, `seed ${seed}`).toBe(reference.size);
      expect(tree.dataBytes, `seed ${seed}`).toBe(entries.reduce((sum, e) => sum + e.size, 0));
      const xattrs = entries.reduce((sum, e) => sum + Object.entries(e.xattrs).reduce((s, [k, v]) => s + xattrBytes(k, v), 0), 0);
      expect(tree.layerBytes, `seed ${seed}`).toBe(tree.dataBytes + xattrs);
      for (const path of paths) expect(tree.get(path), `seed ${seed}: ${path}`).toEqual(reference.get(path));
    }
    // Enough trees have no broken link, so that order and link groups are compared in earnest.
    expect(checked).toBeGreaterThan(150);
    expect(withLinks).toBeGreaterThan(30);
  });

  it("writes a directory's subtree before siblings whose names sort between it and its children (GNU tar --sort=name)", () => {
    const tree = new FsTree(DIRS);
    for (const path of ['lib/x', 'lib.so', 'lib-2', 'lib0', 'lib/a b', 'li', 'ü/1', 'z']) tree.add(file(path));
    tree.add(dir('lib'));
    expect([...tree.sortedEntries()].map((e) => e.path)).toEqual(['li', 'lib', 'lib/a b', 'lib/x', 'lib-2', 'lib.so', 'lib0', 'z', 'ü', 'ü/1']);
  });
});

/**
 * Runs `work` (synchronous) counting Map operations (get, set, has, delete, each step of an
 * iteration), and throws as soon as there are more than `cap`: a quadratic tree fails fast
 * instead of running for hours.
 */
function withMapWorkCap<T>(cap: number, work: () => T): { result: T; operations: number } {
  const proto = Map.prototype as unknown as Record<PropertyKey, (...args: unknown[]) => unknown>;
  const names: PropertyKey[] = ['get', 'set', 'has', 'delete', 'keys', 'values', 'entries', Symbol.iterator];
  // An array, not a Map: restoring must not go through the wrappers.
  const originals = names.map((name) => [name, proto[name]] as const);
  let operations = 0;
  let counting = true;
  const tick = () => {
    if (counting && ++operations > cap) throw new Error(`more than ${cap} map operations`);
  };
  for (const [name, original] of originals) {
    const iterates = name === 'keys' || name === 'values' || name === 'entries' || name === Symbol.iterator;
    proto[name] = iterates
      ? function (this: unknown) {
          const inner = original?.call(this) as Iterator<unknown>;
          return {
            next: () => (tick(), inner.next()),
            [Symbol.iterator]() {
              return this;
            },
          };
        }
      : function (this: unknown, ...args: unknown[]) {
          tick();
          return original?.apply(this, args);
        };
  }
  try {
    return { result: work(), operations };
  } finally {
    counting = false;
    for (let i = 0; i < originals.length; i++) {
      const [name, original] = originals[i] as (typeof originals)[number];
      proto[name] = original as (...args: unknown[]) => unknown;
    }
  }
}

describe('FsTree cost (attack 3)', () => {
  it('takes 200,000 files then 20,000 pairs of x/ and x with O(path) work per entry', () => {
    const tree = new FsTree(DIRS);
    const adds: LayerEntry[] = [];
    for (let i = 0; i < 200_000; i++) adds.push(file(`files/${i % 100}/f${i}`));
    for (let i = 0; i < 20_000; i++) adds.push(dir('x'), file('x/inside'), file('x'));
    // A few map operations per path component (the map scanned everything below on each x).
    const { operations } = withMapWorkCap(20 * adds.length, () => {
      for (const entry of adds) tree.add(entry);
    });
    expect(operations).toBeGreaterThan(adds.length);
    expect(tree.size).toBe(1 + 100 + 200_000 + 1);
    expect(tree.get('x')?.type).toBe('file');
    expect(tree.get('x/inside')).toBeUndefined();
    // Reading out sorts each directory once: O(n log n), not O(n) map scans per entry.
    const { result: count } = withMapWorkCap(20 * tree.size, () => {
      let n = 0;
      for (const _ of tree.sortedEntries()) n++;
      return n;
    });
    expect(count).toBe(tree.size);
  });

  it('resolves many hard links to one file in O(n log n): one group, the first path holding the data', () => {
    const tree = new FsTree(DIRS);
    tree.add(file('target', 3));
    for (let i = 0; i < 50_000; i++) tree.add({ ...NONE, path: `links/l${i}`, type: 'link', linkname: i % 2 || i === 0 ? 'target' : `links/l${i - 1}` });
    const { result: entries } = withMapWorkCap(40 * tree.size, () => [...tree.sortedEntries()]);
    const files = entries.filter((e) => e.type === 'file');
    expect(files).toHaveLength(1);
    expect(files[0]?.path).toBe('links/l0');
    expect(entries.filter((e) => e.type === 'link').every((e) => e.linkname === 'links/l0')).toBe(true);
  });
});

describe('FsTree memory', () => {
  it('keeps names, not full paths: 20,000 entries with 4 KiB paths hold far less than 80 MB', () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const shared = Array.from({ length: 15 }, (_, i) => String(i).padEnd(250, 'd')).join('/');
    gc();
    const before = process.memoryUsage().heapUsed;
    const tree = new FsTree(DIRS);
    for (let i = 0; i < 20_000; i++) tree.add(file(`${shared}/${String(i).padEnd(250, 'f')}`));
    gc();
    const held = process.memoryUsage().heapUsed - before;
    expect(tree.size).toBe(20_015);
    // Each leaf keeps its 250-byte name and a node (~10 MB in all); whole paths would be 80 MB.
    expect(held).toBeLessThan(40 * 1024 ** 2);
  });
});

describe('FsTree budgets', () => {
  const budgets = (over: Partial<typeof DEFAULT_LAYER_BUDGETS>) => new BuildUsage({ ...DEFAULT_LAYER_BUDGETS, ...over });

  it('counts the directories a path implies against the layer: one entry 2,000 levels deep', () => {
    const deep = `${'a/'.repeat(1999)}f`;
    const err = (() => {
      try {
        new FsTree(DIRS, budgets({ maxLayerEntries: 1000 })).add(file(deep));
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(BudgetExceededError);
    expect(err).toMatchObject({ setting: 'BALER_MAX_LAYER_ENTRIES', limit: 1000 });
    const tree = new FsTree(DIRS, budgets({ maxLayerEntries: 2000 }));
    tree.add(file(deep));
    expect(tree.size).toBe(2000);
  });

  it('counts entries as they stand: replacing a directory gives back what was below it', () => {
    const tree = new FsTree(DIRS, budgets({ maxLayerEntries: 12 }));
    for (let i = 0; i < 10; i++) tree.add(file(`d/${i}`));
    tree.add(file('d'));
    for (let i = 0; i < 10; i++) tree.add(file(`e${i}`));
    expect(tree.size).toBe(11);
  });

  it('counts every tree of a build against its entries budget, as entries are added', () => {
    const usage = budgets({ maxBuildEntries: 150 });
    const first = new FsTree(DIRS, usage);
    for (let i = 0; i < 100; i++) first.add(file(`a${i}`));
    const second = new FsTree(DIRS, usage);
    expect(() => {
      for (let i = 0; i < 100; i++) second.add(file(`b/${i}`));
    }).toThrow(expect.objectContaining({ setting: 'BALER_MAX_BUILD_ENTRIES', limit: 150 }));
  });

  it('knows the bytes a layer would hold before it is written', () => {
    const usage = budgets({ maxBuildLayerBytes: 100 * 1024 ** 2 });
    const tree = new FsTree(DIRS, usage);
    // One 1 MiB blob named 300 times (attack 4's amplification): 300 MiB of layer.
    for (let i = 0; i < 300; i++) tree.add({ ...NONE, path: `copy${i}`, type: 'file', size: 1024 ** 2, data: { blob: 'sha256:x' as never, offset: 0 } });
    expect(tree.layerBytes).toBe(300 * 1024 ** 2);
    expect(() => usage.addLayerBytes(tree.layerBytes, 'contents')).toThrow(expect.objectContaining({ setting: 'BALER_MAX_BUILD_LAYER_BYTES' }));
  });
});
