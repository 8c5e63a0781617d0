import type { Digest } from '../digest.ts';
import type { BlobStore } from '../store/blob-store.ts';
import { BudgetExceededError } from '../budget.ts';
import { BuildUsage } from './build-usage.ts';
import { DevicePolicy } from './device-policy.ts';
import { FsTree, type DirDefaults } from './fs-tree.ts';
import { LayerInputError, normalizeLayerPath, type LayerEntry } from './layer-entry.ts';
import { printable } from './printable.ts';
import { storedDataOf } from './stored-data.ts';
import { indexTar, TarFormatError, type IndexedTarEntry } from './tar-index.ts';

/**
 * Conversions between image layers and overlayfs' own forms, in both directions:
 * OCI/Docker layers mark a deletion with an empty file `.wh.NAME` and an opaque directory with
 * `DIR/.wh..wh..opq`; overlayfs uses a 0/0 character device and the xattr
 * `trusted.overlay.opaque=y`. Pure code over stored tars, tested without a VM.
 */

export const WHITEOUT_PREFIX = '.wh.';
export const OPAQUE_MARKER = '.wh..wh..opq';
const OPAQUE_XATTR = 'trusted.overlay.opaque';
const OVERLAY_XATTR_PREFIX = 'trusted.overlay.';

const ROOT_DIR = { mode: 0o755, uid: 0, gid: 0 };
const NO_EXTRAS = { size: 0, linkname: '', devmajor: 0, devminor: 0, xattrs: {} };

function split(path: string): { dir: string; base: string } {
  const slash = path.lastIndexOf('/');
  return slash === -1 ? { dir: '', base: path } : { dir: path.slice(0, slash), base: path.slice(slash + 1) };
}

function join(dir: string, base: string): string {
  return dir ? `${dir}/${base}` : base;
}

/** Options for reading layers; the build's usage carries its budgets (defaults when absent). */
export interface OverlayReadOptions {
  usage?: BuildUsage;
}

/** The entries of a stored tar as they are read (nothing kept), its format errors said of `what`. */
async function* readIndex(store: BlobStore, digest: Digest, what: string, usage: BuildUsage): AsyncGenerator<IndexedTarEntry> {
  try {
    for await (const entry of indexTar(await store.open(digest), usage.tarLimits)) yield entry;
  } catch (err) {
    if (err instanceof TarFormatError) throw new LayerInputError(`${what} is not a valid tar: ${err.message}`, { cause: err });
    throw err;
  }
}

/** A tar entry of the stored tar `blob` as a layer entry at `path`, everything the header says kept (base-devices.ts too). */
export function asEntry(path: string, header: IndexedTarEntry, blob: Digest, linkname: string): LayerEntry {
  const entry: LayerEntry = {
    path,
    type: header.type,
    mode: header.mode,
    uid: header.uid,
    gid: header.gid,
    size: header.size,
    linkname,
    devmajor: header.devmajor,
    devminor: header.devminor,
    xattrs: header.xattrs,
    mtime: header.mtime,
  };
  if (header.size > 0) entry.data = storedDataOf(blob, header);
  return entry;
}

/**
 * The layers of a base image (uncompressed layer tars in the store, bottom first) as one tree
 * in overlay form, layer i under the directory `i/`: what the VM mounts as its lower dirs.
 */
export async function overlayLowerTree(layers: Digest[], store: BlobStore, opts: OverlayReadOptions = {}): Promise<FsTree> {
  const usage = opts.usage ?? new BuildUsage();
  const tree = new FsTree(ROOT_DIR, usage);
  for (const [i, digest] of layers.entries()) {
    const what = `base layer ${i} (${digest})`;
    const prefix = String(i);
    tree.add({ ...NO_EXTRAS, ...ROOT_DIR, path: prefix, type: 'directory' });
    const opaque = new Set<string>();
    try {
      for await (const header of readIndex(store, digest, what, usage)) {
        const path = normalizeLayerPath(header.name, `base layer ${i}: entry`);
        if (path === '') continue;
        const { dir, base } = split(path);
        if (base === OPAQUE_MARKER) {
          opaque.add(dir);
        } else if (base.startsWith(WHITEOUT_PREFIX)) {
          const name = base.slice(WHITEOUT_PREFIX.length);
          if (!name) throw new LayerInputError(`base layer ${i}: invalid whiteout '${printable(header.name)}' (empty name)`);
          tree.add({ ...NO_EXTRAS, path: join(prefix, join(dir, name)), type: 'character-device', mode: 0, uid: 0, gid: 0, mtime: header.mtime });
        } else {
          const linkname = header.type === 'link' ? join(prefix, normalizeLayerPath(header.linkname, `base layer ${i}: hard link`)) : header.linkname;
          tree.add(asEntry(join(prefix, path), header, digest, linkname));
        }
      }
    } catch (err) {
      if (err instanceof BudgetExceededError) throw err.within(what);
      throw err;
    }
    // Once per opaque directory of the layer: O(its path and attributes).
    for (const dir of opaque) {
      const path = join(prefix, dir);
      const existing = tree.get(path);
      const entry: LayerEntry = existing?.type === 'directory' ? existing : { ...NO_EXTRAS, ...ROOT_DIR, path, type: 'directory' };
      tree.add({ ...entry, xattrs: { ...entry.xattrs, [OPAQUE_XATTR]: 'y' } });
    }
  }
  return tree;
}

function isOverlayWhiteout(header: IndexedTarEntry): boolean {
  return header.type === 'character-device' && header.devmajor === 0 && header.devminor === 0;
}

export interface UpperReadOptions extends OverlayReadOptions {
  /** Device nodes (other than overlayfs' whiteouts) follow the one rule (DevicePolicy): dropped under /dev/, elsewhere refused unless this is set. */
  allowDevices?: boolean;
  /** Told the build log's line: how many device nodes the scripts left under /dev/ (dropped). */
  onLog?: (line: string) => void;
}

/**
 * The upper dir a VM step produced (a tar in overlay form, in the store) as the files of a new
 * image layer: whiteout devices (and hard links to them: overlayfs gives all whiteouts one
 * inode) become `.wh.` files, opaque directories get a `.wh..wh..opq` marker, and overlayfs'
 * private `trusted.overlay.*` xattrs are dropped; every other xattr is kept. Device nodes the
 * scripts made (`mknod`) follow the rule for every source (DevicePolicy). One pass: a tar's
 * hard links point back.
 */
export async function layerTreeFromUpper(upper: Digest, store: BlobStore, dirDefaults: DirDefaults, opts: UpperReadOptions = {}): Promise<FsTree> {
  const what = 'the VM step output';
  const usage = opts.usage ?? new BuildUsage();
  const tree = new FsTree(dirDefaults, usage);
  const whiteouts = new Set<string>();
  const devices = new DevicePolicy(what, opts.allowDevices ?? false);
  try {
    for await (const header of readIndex(store, upper, what, usage)) {
      const path = normalizeLayerPath(header.name, 'VM output entry');
      const linkTarget = header.type === 'link' ? normalizeLayerPath(header.linkname, 'VM output hard link') : '';
      if (isOverlayWhiteout(header) || (header.type === 'link' && whiteouts.has(linkTarget))) {
        if (header.type !== 'link') whiteouts.add(path);
        const { dir, base } = split(path);
        tree.add({ ...NO_EXTRAS, path: join(dir, WHITEOUT_PREFIX + base), type: 'file', mode: 0, uid: 0, gid: 0 });
        continue;
      }
      if (!devices.admit(path, header.type, linkTarget || undefined)) continue;
      if (path === '') continue; // the upper dir itself
      tree.add({ ...asEntry(path, header, upper, linkTarget || header.linkname), xattrs: withoutOverlayXattrs(header.xattrs) });
      if (header.type === 'directory' && header.xattrs[OPAQUE_XATTR] === 'y') {
        tree.add({ ...NO_EXTRAS, path: join(path, OPAQUE_MARKER), type: 'file', mode: 0, uid: 0, gid: 0 });
      }
    }
  } catch (err) {
    if (err instanceof BudgetExceededError) throw err.within(what);
    throw err;
  }
  const line = devices.logLine();
  if (line) opts.onLog?.(line);
  return tree;
}

/** The xattrs but overlayfs' own; the same object when there are none of those (it may be shared). */
function withoutOverlayXattrs(xattrs: Readonly<Record<string, string>>): Readonly<Record<string, string>> {
  for (const key in xattrs) {
    if (key.startsWith(OVERLAY_XATTR_PREFIX)) {
      return Object.fromEntries(Object.entries(xattrs).filter(([name]) => !name.startsWith(OVERLAY_XATTR_PREFIX)));
    }
  }
  return xattrs;
}
