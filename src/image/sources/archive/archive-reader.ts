import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Digest } from '../../../digest.ts';
import type { BlobStore } from '../../../store/blob-store.ts';
import { BlobRangeReader } from '../../blob-range-reader.ts';
import { readStoredData, storedDataOf } from '../../stored-data.ts';
import { printable } from '../../printable.ts';
import type { EntryType } from '../../tar-entry.ts';
import { indexTar, TarFormatError } from '../../tar-index.ts';
import { DEFAULT_TAR_LIMITS } from '../../tar-limits.ts';
import type { SparseSegments } from '../../tar-sparse.ts';
import { archiveBudgets, overBudget, type ArchiveBudgets } from './budgets.ts';
import { ArchiveImportError } from './errors.ts';
import { countJsonNodes } from './json-nodes.ts';

const MAX_LINK_HOPS = 16;
/**
 * Tools name an archive's members after digests (`blobs/sha256/<hex>`, `<hex>/layer.tar`;
 * 141 bytes with sha512): shorter than this. The index of members is held in memory, so its
 * paths and link targets are kept short (100,000 members: some 60 MB of heap at most).
 */
export const MAX_MEMBER_PATH_BYTES = 256;

export type ReaderBudgets = Pick<ArchiveBudgets, 'maxMembers' | 'maxJsonBytes' | 'maxJsonNodes'>;

export interface ArchiveMember {
  /** Normalised path (no leading `./` or `/`, no `..`). */
  path: string;
  type: EntryType;
  size: number;
  dataOffset: number;
  /** A member written as a sparse file (`tar -S` over a saved image): where its data lies. */
  sparse?: SparseSegments;
  linkname: string;
}

/**
 * Normalise a path inside an archive: `.` and empty components dropped, `..` refused, so no
 * member or reference can name anything but a member of the archive.
 */
export function normalizeArchivePath(raw: string, what: string): string {
  const parts: string[] = [];
  for (const part of raw.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') throw new ArchiveImportError(`${what} '${printable(raw)}' contains '..'`);
    if (part.includes('\0')) throw new ArchiveImportError(`${what} contains a NUL byte`);
    parts.push(part);
  }
  return parts.join('/');
}

/**
 * An uncompressed tar archive in the store, indexed once: members are read by range straight
 * from the stored blob, never extracted and never held whole (JSON members excepted, capped).
 */
export class ArchiveReader {
  private constructor(
    private readonly store: BlobStore,
    readonly digest: Digest,
    private readonly members: Map<string, ArchiveMember>,
    private readonly json: Pick<ArchiveBudgets, 'maxJsonBytes' | 'maxJsonNodes'>,
  ) {}

  static async open(store: BlobStore, digest: Digest, given?: Partial<ReaderBudgets>): Promise<ArchiveReader> {
    const { maxMembers, maxJsonBytes, maxJsonNodes } = archiveBudgets(given);
    const members = new Map<string, ArchiveMember>();
    let count = 0;
    try {
      // The tar's own entry limit is one above the budget, so that the budget speaks first.
      const limits = { ...DEFAULT_TAR_LIMITS, maxEntries: maxMembers + 1, maxPathBytes: MAX_MEMBER_PATH_BYTES };
      for await (const entry of indexTar(await store.open(digest), limits)) {
        if (++count > maxMembers) throw overBudget('maxMembers', maxMembers, `the archive has more than ${maxMembers} members`);
        const path = normalizeArchivePath(entry.name, 'archive member');
        if (path === '' || entry.type === 'directory') continue;
        // As with tar itself, a later member of the same name replaces an earlier one.
        const member: ArchiveMember = { path, type: entry.type, size: entry.size, dataOffset: entry.dataOffset, linkname: entry.linkname };
        if (entry.sparse) member.sparse = entry.sparse;
        members.set(path, member);
      }
    } catch (err) {
      if (err instanceof TarFormatError) throw new ArchiveImportError(`not an image archive (tar): ${err.message}`, { cause: err });
      throw err;
    }
    return new ArchiveReader(store, digest, members, { maxJsonBytes, maxJsonNodes });
  }

  /** Whether `path` names a member (of any type). */
  has(path: string): boolean {
    return this.members.has(path);
  }

  /**
   * The regular file `path` names, following symbolic links (relative to the link's directory,
   * as `docker save` writes them for shared layers) and hard links within the archive.
   */
  file(rawPath: string, what: string): ArchiveMember {
    let path = normalizeArchivePath(rawPath, `${what}: path`);
    for (let hop = 0; hop <= MAX_LINK_HOPS; hop++) {
      const member = this.members.get(path);
      if (!member) throw new ArchiveImportError(`${what}: the archive has no member '${printable(path)}'`);
      if (member.type === 'file') return member;
      if (member.type === 'symlink') path = resolveLink(path, member.linkname, what);
      else if (member.type === 'link') path = normalizeArchivePath(member.linkname, `${what}: hard link target`);
      else throw new ArchiveImportError(`${what}: archive member '${printable(path)}' is a ${member.type}, not a file`);
    }
    throw new ArchiveImportError(`${what}: more than ${MAX_LINK_HOPS} links from '${printable(rawPath)}'`);
  }

  /** A member's data (streamed by range from the stored archive). */
  async openData(member: ArchiveMember): Promise<Readable> {
    if (member.size === 0) return Readable.from([]);
    if (member.sparse) return Readable.from(this.sparseData(member), { objectMode: false });
    return this.store.open(this.digest, { start: member.dataOffset, end: member.dataOffset + member.size - 1 });
  }

  /** A sparse member's bytes as the file it stands for, zeros in its holes. */
  private async *sparseData(member: ArchiveMember): AsyncGenerator<Buffer> {
    const reader = new BlobRangeReader(this.store);
    try {
      yield* readStoredData(reader, storedDataOf(this.digest, member), member.size);
    } finally {
      reader.close();
    }
  }

  /** The first `n` bytes of a member (fewer if it is shorter). */
  async head(member: ArchiveMember, n: number): Promise<Buffer> {
    const size = Math.min(n, member.size);
    return size === 0 ? Buffer.alloc(0) : this.readRange(member, size);
  }

  /** A JSON member: its bytes (hashing them gives its digest) and its parsed value, both within the JSON budgets. */
  async readJson(rawPath: string, what: string): Promise<{ path: string; bytes: Buffer; digest: Digest; value: unknown }> {
    const member = this.file(rawPath, what);
    const { maxJsonBytes, maxJsonNodes } = this.json;
    if (member.size > maxJsonBytes) {
      throw overBudget('maxJsonBytes', maxJsonBytes, `${what} '${printable(member.path)}' is ${member.size} bytes, more than the JSON budget`);
    }
    const bytes = member.size === 0 ? Buffer.alloc(0) : await this.readRange(member, member.size);
    if (countJsonNodes(bytes, maxJsonNodes) > maxJsonNodes) {
      throw overBudget('maxJsonNodes', maxJsonNodes, `${what} '${printable(member.path)}' holds more than ${maxJsonNodes} objects, arrays and keys`);
    }
    let value: unknown;
    try {
      value = JSON.parse(bytes.toString('utf8'));
    } catch (err) {
      throw new ArchiveImportError(`${what} '${printable(member.path)}' is not valid JSON: ${(err as Error).message}`, { cause: err });
    }
    return { path: member.path, bytes, digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`, value };
  }

  private async readRange(member: ArchiveMember, size: number): Promise<Buffer> {
    const chunks: Buffer[] = [];
    let length = 0;
    const source = member.sparse ? this.sparseData(member) : ((await this.store.open(this.digest, { start: member.dataOffset, end: member.dataOffset + size - 1 })) as AsyncIterable<Buffer>);
    for await (const chunk of source) {
      chunks.push(chunk.subarray(0, size - length));
      length += chunk.length;
      if (length >= size) break;
    }
    const data = Buffer.concat(chunks);
    if (data.length !== size) throw new ArchiveImportError(`archive member '${printable(member.path)}' is truncated`);
    return data;
  }
}

/** A symbolic link's target as an archive path: relative to the link's directory, or to the root. */
function resolveLink(linkPath: string, target: string, what: string): string {
  const parts = target.startsWith('/') ? [] : linkPath.split('/').slice(0, -1);
  for (const part of target.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (parts.length === 0) throw new ArchiveImportError(`${what}: link '${printable(linkPath)}' -> '${printable(target)}' points outside the archive`);
      parts.pop();
    } else parts.push(part);
  }
  return parts.join('/');
}
