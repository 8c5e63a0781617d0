/** Decodes the LZ4 legacy frame format the kernel's `lz4 -l` writes (a compressed bzImage payload). */

const MAGIC = 0x184c2102;
const MAX_BLOCK = 8 << 20;

export function lz4LegacyDecode(buf: Buffer): Buffer {
  if (buf.readUInt32LE(0) !== MAGIC) throw new Error('not an LZ4 legacy frame');
  const chunks: Buffer[] = [];
  let pos = 4;
  while (pos + 4 <= buf.length) {
    const size = buf.readUInt32LE(pos);
    if (size === MAGIC) {
      pos += 4;
      continue;
    }
    if (size === 0 || pos + 4 + size > buf.length) break; // trailing size_append or padding
    const block = buf.subarray(pos + 4, pos + 4 + size);
    pos += 4 + size;
    chunks.push(decodeBlock(block));
  }
  return Buffer.concat(chunks);
}

function decodeBlock(block: Buffer): Buffer {
  const out = Buffer.allocUnsafe(MAX_BLOCK);
  const byte = (i: number): number => block[i] as number;
  let o = 0;
  let i = 0;
  while (i < block.length) {
    const token = byte(i++);
    let lit = token >> 4;
    if (lit === 15) {
      let b: number;
      do {
        b = byte(i++);
        lit += b;
      } while (b === 255);
    }
    block.copy(out, o, i, i + lit);
    o += lit;
    i += lit;
    if (i >= block.length) break; // last sequence has literals only
    const offset = byte(i) | (byte(i + 1) << 8);
    i += 2;
    if (offset === 0 || offset > o) throw new Error('corrupt LZ4 block');
    let len = token & 15;
    if (len === 15) {
      let b: number;
      do {
        b = byte(i++);
        len += b;
      } while (b === 255);
    }
    len += 4;
    for (let k = 0; k < len; k++, o++) out[o] = out[o - offset] as number;
  }
  return out.subarray(0, o);
}
