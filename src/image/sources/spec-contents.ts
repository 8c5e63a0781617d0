import type { Digest } from '../../digest.ts';
import type { ContentEntry } from './content-entry.ts';
import type { BlobStore } from '../../store/blob-store.ts';
import { uncompressedBlob } from '../uncompressed-blob.ts';
import { BudgetExceededError } from '../../budget.ts';
import { BuildUsage } from '../build-usage.ts';
import { DevicePolicy } from '../device-policy.ts';
import { FsTree } from '../fs-tree.ts';
import { joinLayerPath, LayerInputError, normalizeLayerPath, requireByteName, type LayerEntry } from '../layer-entry.ts';
import { storedDataOf } from '../stored-data.ts';
import { indexTar, TarFormatError } from '../tar-index.ts';

export interface ContentsOptions {
  uid: number;
  gid: number;
  /** Device nodes outside /dev/ are refused unless this is set (DevicePolicy; those under /dev/ are dropped). */
  allowDevices: boolean;
  /** Told the build log's lines: how many device nodes each tar had under /dev/ (dropped). */
  onLog?: (line: string) => void;
  /** The build's budgets and what it has spent of them; absent: the defaults, for this tree alone. */
  usage?: BuildUsage;
  /** The spec's index of the first entry given, for errors and log lines (`contents[3]`); default 0. */
  firstIndex?: number;
}

const DEFAULT_FILE_MODE = 0o644;
const DEFAULT_DIR_MODE = 0o755;

/**
 * Resolve a spec's `contents` list into one merged file tree. Later entries win; every entry
 * is owned by the spec's uid/gid unless a tar entry asks to keep its own owners.
 */
export async function resolveContents(contents: ContentEntry[], store: BlobStore, opts: ContentsOptions): Promise<FsTree> {
  const usage = opts.usage ?? new BuildUsage();
  const tree = new FsTree({ mode: DEFAULT_DIR_MODE, uid: opts.uid, gid: opts.gid }, usage);
  const base = { uid: opts.uid, gid: opts.gid, size: 0, linkname: '', devmajor: 0, devminor: 0, xattrs: {} };

  for (const [index, content] of contents.entries()) {
    const where = `contents[${(opts.firstIndex ?? 0) + index}]`;
    try {
      if ('tar' in content) {
        await addTar(tree, store, content.tar, normalizeLayerPath(content.to ?? '/', `${where}.to`), content.preserveOwners ?? false, { ...opts, usage }, where);
      } else if ('file' in content) {
        const info = await store.stat(content.file);
        if (!info) throw new LayerInputError(`${where}: blob ${content.file} not found`);
        tree.add({
          ...base,
          path: requireNonRoot(normalizeLayerPath(content.to, `${where}.to`), where),
          type: 'file',
          mode: parseMode(content.mode, DEFAULT_FILE_MODE),
          size: info.size,
          data: { blob: content.file, offset: 0 },
        });
      } else if ('text' in content) {
        const data = Buffer.from(content.text, 'utf8');
        tree.add({
          ...base,
          path: requireNonRoot(normalizeLayerPath(content.to, `${where}.to`), where),
          type: 'file',
          mode: parseMode(content.mode, DEFAULT_FILE_MODE),
          size: data.length,
          data: { inline: data },
        });
      } else if ('dir' in content) {
        tree.add({ ...base, path: normalizeLayerPath(content.dir, `${where}.dir`), type: 'directory', mode: parseMode(content.mode, DEFAULT_DIR_MODE) });
      } else {
        requireByteName(content.target, `${where}.target`);
        tree.add({
          ...base,
          path: requireNonRoot(normalizeLayerPath(content.symlink, `${where}.symlink`), where),
          type: 'symlink',
          mode: 0o777,
          linkname: content.target,
        });
      }
    } catch (err) {
      if (err instanceof BudgetExceededError) throw err.within(where);
      throw err;
    }
  }
  return tree;
}

async function addTar(tree: FsTree, store: BlobStore, digest: Digest, to: string, preserveOwners: boolean, opts: ContentsOptions, where: string): Promise<void> {
  const tarDigest = await uncompressedBlob(store, digest).catch((err: unknown) => {
    throw err instanceof LayerInputError ? new LayerInputError(`${where}: ${err.message}`, { cause: err }) : err;
  });
  const devices = new DevicePolicy(where, opts.allowDevices);
  try {
    for await (const header of indexTar(await store.open(tarDigest), opts.usage?.tarLimits)) {
      const path = joinLayerPath(to, normalizeLayerPath(header.name, `${where}: tar entry`));
      const linkTarget = header.type === 'link' ? joinLayerPath(to, normalizeLayerPath(header.linkname, `${where}: hard link target`)) : undefined;
      // The rule is about where the entry lands in the image (`to` included).
      if (!devices.admit(path, header.type, linkTarget)) continue;
      const entry: LayerEntry = {
        path,
        type: header.type,
        mode: header.mode,
        uid: preserveOwners ? header.uid : opts.uid,
        gid: preserveOwners ? header.gid : opts.gid,
        size: header.size,
        linkname: linkTarget ?? (header.type === 'symlink' ? header.linkname : ''),
        devmajor: header.devmajor,
        devminor: header.devminor,
        xattrs: header.xattrs,
      };
      if (header.size > 0) entry.data = storedDataOf(tarDigest, header);
      tree.add(entry);
    }
  } catch (err) {
    if (err instanceof TarFormatError) throw new LayerInputError(`${where}: blob ${digest} is not a valid tar: ${err.message}`, { cause: err });
    throw err;
  }
  const line = devices.logLine();
  if (line) opts.onLog?.(line);
}

function parseMode(mode: string | undefined, fallback: number): number {
  return mode === undefined ? fallback : parseInt(mode, 8);
}

function requireNonRoot(path: string, where: string): string {
  if (path === '') throw new LayerInputError(`${where}: the path must not be the root directory`);
  return path;
}
