import zlib from 'node:zlib';

/**
 * The unit of parallel work (pigz's): the input is cut into blocks of exactly this many bytes
 * (the last one shorter), each compressed on its own. Part of the output format: changing it
 * changes the bytes.
 */
export const BLOCK_SIZE = 128 * 1024;

/** Each block after the first is compressed with the previous block's last 32 KiB of input as preset dictionary (deflate's whole window). */
export const DICTIONARY_SIZE = 32 * 1024;

export const DEFAULT_LEVEL = 6;

/**
 * Names the way pieces are made, for cache keys: block size, dictionary, level and the zlib
 * build. The bytes are a function of the input for one zlib build; another Node release may
 * bundle a zlib that compresses differently (still valid, but other bytes), so a cache of
 * pieces that must match fresh compression byte for byte should key on this.
 */
export function pieceFormatId(level: number = DEFAULT_LEVEL): string {
  return `deflate-piece-b${BLOCK_SIZE / 1024}k-d${DICTIONARY_SIZE / 1024}k-l${checkLevel(level)}-zlib-${process.versions.zlib}`;
}

export function checkLevel(level: number | undefined): number {
  if (level === undefined) return DEFAULT_LEVEL;
  if (!Number.isInteger(level) || level < 0 || level > 9) throw new RangeError(`deflate level must be an integer 0..9, got ${level}`);
  return level;
}

/**
 * Raw deflate of one block as a non-final, byte-aligned piece (it ends with a sync flush:
 * an empty stored block 00 00 00 ff ff), so pieces concatenate into one deflate stream.
 * Runs on the libuv threadpool (zlib's async form); the result depends only on the bytes,
 * the dictionary and the level. (Level 0 is the one level whose bytes also depend on zlib's
 * output buffer size, `chunkSize` below: it is a fixed function of the block length.)
 */
export function deflateBlock(block: Uint8Array, dictionary: Uint8Array | undefined, level: number): Promise<Buffer> {
  if (isZero(block) && (!dictionary || isZero(dictionary))) return deflateZeroBlock(block.length, dictionary?.length ?? 0, level);
  return compressBlock(block, dictionary, level);
}

/** Zeros to compare blocks with: a block is all zeros when it equals the start of this (memcmp). */
const ZEROS = Buffer.alloc(BLOCK_SIZE);

function isZero(bytes: Uint8Array): boolean {
  return bytes.length <= ZEROS.length && Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).equals(ZEROS.subarray(0, bytes.length));
}

/**
 * Blocks of zeros after zeros (the holes of a sparse file, written out as a regular file: 10 GiB
 * of them take 80k blocks) compress to the same bytes every time: zlib compresses the first such
 * block of each shape (length, dictionary length, level), and the others reuse its output, so
 * the bytes stay exactly zlib's. A few shapes only: full blocks, and one last block per input.
 */
const zeroBlocks = new Map<string, Promise<Buffer>>();
const MAX_ZERO_SHAPES = 64;

function deflateZeroBlock(length: number, dictionaryLength: number, level: number): Promise<Buffer> {
  const key = `${length}/${dictionaryLength}/${level}`;
  let made = zeroBlocks.get(key);
  if (!made) {
    // The last block of each input may have its own length: keep the memo small all the same.
    if (zeroBlocks.size >= MAX_ZERO_SHAPES) zeroBlocks.clear();
    made = compressBlock(ZEROS.subarray(0, length), dictionaryLength > 0 ? ZEROS.subarray(0, dictionaryLength) : undefined, level);
    zeroBlocks.set(key, made);
    made.catch(() => zeroBlocks.delete(key));
  }
  return made;
}

function compressBlock(block: Uint8Array, dictionary: Uint8Array | undefined, level: number): Promise<Buffer> {
  const options: zlib.ZlibOptions = {
    level,
    finishFlush: zlib.constants.Z_SYNC_FLUSH,
    // Room for the whole output (deflate's bound is n + n/4096 + a few bytes, plus 5 for the
    // flush), so one threadpool round trip does the block instead of one per 16 KiB.
    chunkSize: Math.max(1024, block.length + (block.length >>> 3) + 1024),
  };
  if (dictionary && dictionary.length > 0) options.dictionary = dictionary;
  return new Promise((resolve, reject) => {
    zlib.deflateRaw(block, options, (err, out) => {
      if (err) return reject(err);
      // zlib hands back a view of its whole output buffer (chunkSize bytes): copy what is well
      // compressed so that keeping the piece does not keep ~1.2 blocks of memory per block.
      resolve(out.byteLength * 2 < out.buffer.byteLength ? Buffer.from(out) : out);
    });
  });
}
