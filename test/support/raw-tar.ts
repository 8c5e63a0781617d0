import { gzipSync } from 'node:zlib';

/**
 * Tars block by block, for archives no tool writes: global PAX headers, malformed PAX
 * numbers, device nodes without root, millions of entries. Written here rather than with
 * src/image/tar-writer.ts so that what the reader is tested on is not the writer's idea of a tar.
 */

const BLOCK = 512;

export interface RawHeader {
  name: string;
  /** The typeflag: '0' file, '1' hard link, '2' symlink, '3' char device, '4' block device, '5' directory, 'x', 'g', 'L', 'K'. */
  type?: string;
  size?: number;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
}

function octal(block: Buffer, offset: number, length: number, value: number): void {
  block.write(`${value.toString(8).padStart(length - 1, '0')}\0`, offset, length, 'latin1');
}

/** One ustar header block, its checksum computed. Names over 100 bytes need a PAX `path` record. */
export function header(h: RawHeader): Buffer {
  const block = Buffer.alloc(BLOCK);
  block.write(h.name, 0, 100, 'utf8');
  octal(block, 100, 8, h.mode ?? (h.type === '5' ? 0o755 : 0o644));
  octal(block, 108, 8, h.uid ?? 0);
  octal(block, 116, 8, h.gid ?? 0);
  octal(block, 124, 12, h.size ?? 0);
  octal(block, 136, 12, h.mtime ?? 0);
  block.write(h.type ?? '0', 156, 1, 'latin1');
  block.write(h.linkname ?? '', 157, 100, 'utf8');
  block.write('ustar\u000000', 257, 8, 'latin1');
  octal(block, 329, 8, h.devmajor ?? 0);
  octal(block, 337, 8, h.devminor ?? 0);
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
  return block;
}

function padded(data: Buffer): Buffer {
  const pad = (BLOCK - (data.length % BLOCK)) % BLOCK;
  return pad === 0 ? data : Buffer.concat([data, Buffer.alloc(pad)]);
}

/** `<len> <key>=<value>\n`, len counting the whole record. */
export function paxRecord(key: string, value: string | Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`, 'utf8'), Buffer.isBuffer(value) ? value : Buffer.from(value, 'utf8'), Buffer.from('\n')]);
  let length = body.length + 1;
  while (String(length).length + body.length !== length) length = String(length).length + body.length;
  return Buffer.concat([Buffer.from(String(length)), body]);
}

/** An extended header (`x`, this entry) or a global one (`g`) with these records, or raw record bytes. */
export function paxHeader(records: Array<[string, string | Buffer]> | Buffer, type: 'x' | 'g' = 'x'): Buffer {
  const data = Buffer.isBuffer(records) ? records : Buffer.concat(records.map(([key, value]) => paxRecord(key, value)));
  return Buffer.concat([header({ name: type === 'g' ? 'pax_global_header' : 'PaxHeader', type, size: data.length }), padded(data)]);
}

/** An entry with its data (regular files), preceded by a PAX header when `pax` has records. */
export function entry(h: RawHeader, data: Buffer = Buffer.alloc(0), pax: Array<[string, string | Buffer]> = []): Buffer {
  const parts = pax.length > 0 ? [paxHeader(pax)] : [];
  parts.push(header({ ...h, size: h.size ?? data.length }));
  if (data.length > 0) parts.push(padded(data));
  return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
}

export const END_OF_ARCHIVE = Buffer.alloc(2 * BLOCK);

/** `n` empty regular files, `f0` … */
export function emptyFiles(n: number): Buffer[] {
  return Array.from({ length: n }, (_, i) => entry({ name: `f${i}` }));
}

/** `n` extended attributes of `bytes` bytes each, as `SCHILY.xattr.user.*` PAX records. */
export function xattrRecords(n: number, bytes = 8): Array<[string, string]> {
  return Array.from({ length: n }, (_, i) => [`SCHILY.xattr.user.a${i}`, 'v'.repeat(bytes)]);
}

/** Attack 1 of issue 12, gzip'd (~100 KiB): one global header of ~1 MiB of xattrs, then 8,000 empty files. */
export function globalXattrBomb(): Buffer {
  return gzipSync(Buffer.concat([paxHeader(xattrRecords(20_000, 20), 'g'), ...emptyFiles(8000), END_OF_ARCHIVE]));
}
