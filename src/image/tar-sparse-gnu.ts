import { readNumber, TarFormatError } from './tar-fields.ts';
import { BLOCK, SegmentCollector, type ArchiveReads, type SparseFile, type SparseLimits } from './tar-sparse.ts';

// GNU's old sparse form (typeflag `S`, see tar-sparse.ts): the map in the header and in
// extension blocks after it.

/** A pair of GNU's old header form is unused when both its fields start with NUL. */
function isUnusedPair(block: Buffer, at: number): boolean {
  return block[at] === 0 && block[at + 12] === 0;
}

/**
 * The map of a GNU old-form sparse entry (typeflag `S`): the pairs in its header and in the
 * extension blocks that follow it, read from `reads`, which is left at the entry's data.
 * `storedBytes` is the header's size: the segments' data in the archive.
 */
export async function readGnuSparse(header: Buffer, storedBytes: number, reads: ArchiveReads, limits: SparseLimits, offset: number): Promise<SparseFile> {
  const collector = new SegmentCollector(limits, offset);
  const takePairs = (block: Buffer, from: number, pairs: number) => {
    for (let i = 0; i < pairs; i++) {
      const at = from + i * 24;
      if (isUnusedPair(block, at)) continue;
      collector.add(readNumber(block, at, 12, offset, 'sparse map: invalid offset'), readNumber(block, at + 12, 12, offset, 'sparse map: invalid length'), storedBytes);
    }
  };
  takePairs(header, 386, 4);
  const realSize = readNumber(header, 483, 12, offset, 'sparse map: invalid real size');
  let extended = header[482] !== 0;
  while (extended) {
    // A block counts once even when it holds no pair, so that empty blocks cannot chain for free.
    collector.count();
    const block = await reads.read(BLOCK);
    if (block === null || block.length < BLOCK) throw new TarFormatError('truncated sparse map', offset);
    takePairs(block, 0, 21);
    extended = block[504] !== 0;
  }
  return collector.finish(realSize, storedBytes, undefined, 0);
}
