import zlib from 'node:zlib';

/** The CRC-32 (gzip's, reflected polynomial 0xedb88320) of a buffer, continuing from `prev`. */
export type Crc32 = (data: Uint8Array, prev?: number) => number;

let table: Uint32Array | undefined;

function crcTable(): Uint32Array {
  if (table) return table;
  table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
}

/** Plain JS CRC-32, for Node releases before 20.15 that lack `zlib.crc32`. */
export const crc32Js: Crc32 = (data, prev = 0) => {
  const t = crcTable();
  let c = ~prev >>> 0;
  for (let i = 0; i < data.length; i++) c = (t[(c ^ (data[i] as number)) & 0xff] as number) ^ (c >>> 8);
  return ~c >>> 0;
};

const native = (zlib as { crc32?: (data: Uint8Array, prev?: number) => number }).crc32;

/** `zlib.crc32` where Node has it (20.15+: SIMD, GB/s), else the JS table version. */
export const crc32: Crc32 = typeof native === 'function' ? (data, prev = 0) => native(data, prev) >>> 0 : crc32Js;
