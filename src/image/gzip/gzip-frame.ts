/**
 * The fixed parts of a gzip member (RFC 1952) around a raw deflate stream made of pieces,
 * and the CRC algebra that lets pieces compressed apart be framed as one member.
 */

/**
 * The 10-byte member header: magic 1f 8b, CM 8 (deflate), FLG 0 (no name, no extra), MTIME 0,
 * XFL 0, OS 255 (unknown). Fixed, so the bytes never depend on the host or the clock.
 */
export const GZIP_HEADER: Buffer = Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0xff]);

/**
 * An empty final block with fixed Huffman codes (BFINAL 1, BTYPE 01, then end-of-block 256):
 * appended after byte-aligned pieces, it ends the deflate stream.
 */
export const FINAL_EMPTY_BLOCK: Buffer = Buffer.from([0x03, 0x00]);

const TWO_32 = 2 ** 32;

/** The 8-byte member trailer: CRC-32 of the uncompressed data, then its length mod 2^32, both little-endian. */
export function gzipTrailer(crc32: number, rawLength: number): Buffer {
  if (!Number.isSafeInteger(rawLength) || rawLength < 0) throw new RangeError(`rawLength must be a non-negative safe integer, got ${rawLength}`);
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(crc32 >>> 0, 0);
  trailer.writeUInt32LE(rawLength % TWO_32, 4);
  return trailer;
}

// GF(2) polynomial arithmetic modulo the CRC-32 polynomial, bit-reflected as in zlib's crc32.c
// (x^0 is the top bit 0x80000000).

const POLY = 0xedb88320;
const X0 = 0x80000000;

/** a(x) * b(x) modulo p(x). */
function multmodp(a: number, b: number): number {
  if (a === 0) return 0;
  let m = X0;
  let p = 0;
  for (;;) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) === 0) break;
    }
    m >>>= 1;
    b = b & 1 ? (b >>> 1) ^ POLY : b >>> 1;
  }
  return p >>> 0;
}

/** X2N[k] = x^(2^k) modulo p(x). x^(2^32) = x modulo p(x) (the order of x divides 2^32 - 1), so 32 entries serve any k. */
const X2N: readonly number[] = (() => {
  const t: number[] = [];
  let p = X0 >>> 1; // x^1
  t.push(p);
  for (let n = 1; n < 32; n++) t.push((p = multmodp(p, p)));
  return t;
})();

/** x^(n * 2^k) modulo p(x), for any non-negative safe integer n. */
function x2nmodp(n: number, k: number): number {
  let p = X0; // x^0 == 1
  while (n > 0) {
    if (n % 2 === 1) p = multmodp(X2N[k & 31] as number, p);
    n = Math.floor(n / 2);
    k++;
  }
  return p;
}

/**
 * zlib's crc32_combine: the CRC-32 of A followed by B, from crc1 = CRC(A), crc2 = CRC(B) and
 * len2 = |B| (any non-negative safe integer; lengths past 2^32 are fine). crc32Combine(0, c, n) = c.
 */
export function crc32Combine(crc1: number, crc2: number, len2: number): number {
  if (!Number.isSafeInteger(len2) || len2 < 0) throw new RangeError(`len2 must be a non-negative safe integer, got ${len2}`);
  return (multmodp(x2nmodp(len2, 3), crc1 >>> 0) ^ (crc2 >>> 0)) >>> 0;
}
