/**
 * Sparse files (`tar -S`) whose map is the attack (src/image/tar-sparse.ts reads them): a PAX
 * 1.0 map streamed in the entry's data that lists ten million segments, a GNU `S` header
 * chained to millions of extension blocks, and a file of 1 PiB holding one byte of data. Each
 * map describes a file (ordered segments whose lengths add up to the data; bsdtar extracts the
 * small ones): only its size, or the file's, is hostile. GNU tar 1.34 does not extract (a)'s
 * and (b)'s small shapes: it reads a segment's data in whole blocks, and ends an old-form map
 * at its first empty pair.
 */
import { RawTarFile, rawHeader } from './raw-tar.ts';

const BLOCK = 512;
const padded = (bytes: number) => bytes + ((BLOCK - (bytes % BLOCK)) % BLOCK);

/**
 * A PAX 1.0 map of `segments` segments: one byte at every other byte of the file (`2i`, 1), then
 * GNU tar's empty one at the file's end (`2·segments`, 0) that says its size.
 */
export const PAX_MAP_BOMB = { segments: 10_000_000 };

/** Segments a piece of the map holds: about 64 KiB of text. */
const SEGMENTS_PER_PIECE = 6000;

function* mapLines(segments: number): Generator<Buffer> {
  yield Buffer.from(`${segments + 1}\n`);
  for (let from = 0; from < segments; from += SEGMENTS_PER_PIECE) {
    let text = '';
    for (let i = from; i < Math.min(segments, from + SEGMENTS_PER_PIECE); i++) text += `${2 * i}\n1\n`;
    yield Buffer.from(text, 'latin1');
  }
  yield Buffer.from(`${2 * segments}\n0\n`);
}

/** The map's bytes, counted without writing it. */
function mapLength(segments: number): number {
  let bytes = `${segments + 1}\n`.length + `${2 * segments}\n0\n`.length;
  for (let i = 0; i < segments; i++) bytes += String(2 * i).length + 3;
  return bytes;
}

/** `bytes` of data in pieces of at most 1 MiB. */
function* dataPieces(bytes: number): Generator<Buffer> {
  const piece = Buffer.alloc(1 << 20, 'x');
  for (let left = bytes; left > 0; left -= piece.length) yield left >= piece.length ? piece : piece.subarray(0, left);
}

/** A PAX 1.0 sparse entry (bsdtar's form): `GNU.sparse.*` records, then the map and data in the entry's data. */
async function paxSparseEntry(tar: RawTarFile, name: string, realSize: number, map: { bytes: number; lines: Iterable<Buffer> }, dataBytes: number): Promise<void> {
  await tar.pax([
    ['GNU.sparse.major', '1'],
    ['GNU.sparse.minor', '0'],
    ['GNU.sparse.name', name],
    ['GNU.sparse.realsize', String(realSize)],
  ]);
  const mapPadding = padded(map.bytes) - map.bytes;
  const pieces = function* () {
    yield* map.lines;
    yield Buffer.alloc(mapPadding);
    yield* dataPieces(dataBytes);
  };
  await tar.streamedEntry({ name: `GNUSparseFile.0/${name}` }, padded(map.bytes) + dataBytes, pieces());
}

/** Attack (a): one PAX 1.0 entry whose map, streamed in its data, lists ten million segments. */
export async function writePaxMapBomb(path: string, shape = PAX_MAP_BOMB): Promise<string> {
  const tar = new RawTarFile(path, { gzip: true });
  await paxSparseEntry(tar, 'map-bomb', 2 * shape.segments, { bytes: mapLength(shape.segments), lines: mapLines(shape.segments) }, shape.segments);
  return tar.close();
}

/** A GNU header chained to `extensionBlocks` blocks, each with no pair in it. */
export const GNU_EXTENSION_CHAIN = { extensionBlocks: 2_000_000 };

/** 12-byte octal field as GNU tar writes it. */
function octal12(value: number): string {
  return value.toString(8).padStart(11, '0') + '\0';
}

/** A GNU old-form sparse header (typeflag `S`): one pair in the header, `isextended` set. */
function gnuSparseHeader(name: string, realSize: number, pair: [number, number], dataBytes: number, extended: boolean): Buffer {
  const block = rawHeader({ name, size: dataBytes });
  block.write('S', 156, 'latin1');
  // GNU's magic and version ("ustar  \0"): its bytes 345–500 are the sparse fields, no ustar prefix.
  block.write('ustar  \0', 257, 'latin1');
  block.write(octal12(pair[0]), 386, 'latin1');
  block.write(octal12(pair[1]), 398, 'latin1');
  block[482] = extended ? 1 : 0;
  block.write(octal12(realSize), 483, 'latin1');
  block.write(' '.repeat(8), 148, 'latin1');
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return block;
}

/**
 * Attack (b): a GNU `S` entry whose header says more of its map follows, then `extensionBlocks`
 * blocks that each say the same (`isextended`) and hold no pair: a reader that counts only
 * segments follows the chain for free (libarchive follows it too). Then the entry's one byte.
 */
export async function writeGnuExtensionChain(path: string, shape = GNU_EXTENSION_CHAIN): Promise<string> {
  const tar = new RawTarFile(path, { gzip: true });
  const more = Buffer.alloc(BLOCK);
  more[504] = 1;
  const last = Buffer.alloc(BLOCK);
  const chain = function* () {
    for (let i = 1; i < shape.extensionBlocks; i++) yield more;
    yield last;
  };
  // The extension blocks come before the data, and the header's size does not count them.
  await tar.raw(gnuSparseHeader('chain', 1 << 20, [0, 1], 1, true));
  for (const block of chain()) await tar.raw(block);
  const data = Buffer.alloc(BLOCK);
  data.write('x');
  await tar.raw(data);
  return tar.close();
}

/** Attack (c): a file of 1 PiB (PAX 1.0) with one byte of data, just before its end. */
export const PETABYTE_FILE = { realSize: 1024 ** 5 };

export async function writePetabyteFile(path: string, shape = PETABYTE_FILE): Promise<string> {
  const tar = new RawTarFile(path);
  const map = Buffer.from(`2\n${shape.realSize - 1}\n1\n${shape.realSize}\n0\n`);
  await paxSparseEntry(tar, 'petabyte', shape.realSize, { bytes: map.length, lines: [map] }, 1);
  return tar.close();
}
