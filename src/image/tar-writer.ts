import { PassThrough, type Readable } from 'node:stream';
import { printable } from './printable.ts';
import { TYPEFLAG_OF, type TarHeader } from './tar-entry.ts';
import { compareNames, encodeName, isUtf8Name } from './tar-name.ts';

/** What one tar entry's header says. Names are full paths; PAX carries what ustar cannot. */
/** A header to write: what tar-entry.ts's TarHeader holds, the rarely used fields optional. */
export type TarWriteHeader = Omit<TarHeader, 'linkname' | 'devmajor' | 'devminor' | 'xattrs'> & Partial<Pick<TarHeader, 'linkname' | 'devmajor' | 'devminor' | 'xattrs'>>;

const BLOCK = 512;
const USTAR_MAX_ID = 0o7777777;
const USTAR_MAX_SIZE = 0o77777777777;
const END_OF_ARCHIVE = Buffer.alloc(2 * BLOCK);

/**
 * The header blocks of one entry: a PAX extended header when needed, then the ustar header.
 * Deterministic: the same fields always give the same bytes. Written by hand because PAX
 * records must carry binary xattr values (security.capability) byte for byte, and a mode of
 * 0000 must stay 0000, which tar-stream's packer does not do.
 *
 * Names and link targets are written as the bytes they stand for (tar-name.ts). One that is not
 * ASCII, or too long for ustar, goes in a PAX record, and its ustar field holds an ASCII
 * stand-in (as before names were bytes, so that an image of UTF-8 names keeps its digest). A
 * record whose bytes are not UTF-8 comes with `hdrcharset=BINARY`, POSIX's word for "these
 * values are bytes, not UTF-8", as libarchive and Python write it. Every reader we test takes
 * the bytes as they are: GNU tar 1.34 and mksquashfs print a warning that they do not know the
 * keyword and go on (exit 0); bsdtar 3.6, Python, busybox and Go's archive/tar (umoci) say nothing.
 */
export function encodeHeader(h: TarWriteHeader): Buffer {
  const records: Array<[string, Buffer]> = [];
  const linkname = h.linkname ?? '';
  const nameBytes = encodeName(h.name);
  const linkBytes = encodeName(linkname);
  const split = splitUstarName(h.name, nameBytes);
  const paxLink = linkBytes.length > 100 || !isAscii(linkBytes);
  if (!split) records.push(['path', nameBytes]);
  if (paxLink) records.push(['linkpath', linkBytes]);
  if ((!split && !isUtf8Name(h.name)) || (paxLink && !isUtf8Name(linkname))) records.push(['hdrcharset', Buffer.from('BINARY')]);
  if (h.uid > USTAR_MAX_ID) records.push(['uid', Buffer.from(String(h.uid))]);
  if (h.gid > USTAR_MAX_ID) records.push(['gid', Buffer.from(String(h.gid))]);
  if (h.size > USTAR_MAX_SIZE) records.push(['size', Buffer.from(String(h.size))]);
  for (const key of Object.keys(h.xattrs ?? {}).sort(compareNames)) {
    records.push([`SCHILY.xattr.${key}`, Buffer.from(h.xattrs?.[key] ?? '', 'latin1')]);
  }

  const ustar = ustarBlock({
    name: split?.name ?? asciiFallback(nameBytes, 100),
    prefix: split?.prefix ?? '',
    mode: h.mode,
    uid: h.uid > USTAR_MAX_ID ? 0 : h.uid,
    gid: h.gid > USTAR_MAX_ID ? 0 : h.gid,
    size: h.size > USTAR_MAX_SIZE ? 0 : h.size,
    mtime: h.mtime,
    typeflag: TYPEFLAG_OF[h.type],
    linkname: paxLink ? asciiFallback(linkBytes, 100) : linkBytes.toString('latin1'),
    devmajor: h.devmajor ?? 0,
    devminor: h.devminor ?? 0,
  });
  if (records.length === 0) return ustar;

  records.sort((a, b) => compareNames(a[0], b[0]));
  const pax = Buffer.concat(records.map(([key, value]) => paxRecord(key, value)));
  const base = h.name.replace(/\/$/, '').split('/').pop() ?? '';
  const paxHeader = ustarBlock({
    name: asciiFallback(encodeName(`PaxHeaders/${base}`), 100),
    prefix: '',
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: pax.length,
    mtime: h.mtime,
    typeflag: 'x',
    linkname: '',
    devmajor: 0,
    devminor: 0,
  });
  return Buffer.concat([paxHeader, pax, Buffer.alloc(padding(pax.length)), ustar]);
}

export function padding(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

/** `<len> <key>=<value>\n`, where len counts the whole record including its own digits. The key's bytes as tar-name.ts keeps them (xattr names). */
function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(' '), encodeName(key), Buffer.from('='), value, Buffer.from('\n')]);
  let length = body.length + 1;
  while (String(length).length + body.length !== length) length = String(length).length + body.length;
  return Buffer.concat([Buffer.from(String(length)), body]);
}

function isAscii(bytes: Buffer): boolean {
  for (const byte of bytes) if (byte > 0x7f) return false;
  return true;
}

/** A ustar name field for readers that ignore PAX: ASCII, cut to the field size. */
function asciiFallback(bytes: Buffer, max: number): string {
  return bytes
    .toString('latin1')
    .replace(/[^\x20-\x7e]/g, '_')
    .slice(0, max);
}

/** ustar keeps names up to 100 bytes, or a prefix of up to 155 plus `/` plus a name of up to 100. */
function splitUstarName(name: string, bytes: Buffer): { name: string; prefix: string } | null {
  if (!isAscii(bytes)) return null;
  if (bytes.length <= 100) return { name, prefix: '' };
  for (let i = name.indexOf('/'); i !== -1 && i <= 155; i = name.indexOf('/', i + 1)) {
    const rest = name.slice(i + 1);
    if (rest.length > 0 && rest.length <= 100) return { prefix: name.slice(0, i), name: rest };
  }
  return null;
}

interface UstarFields {
  name: string;
  prefix: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: string;
  linkname: string;
  devmajor: number;
  devminor: number;
}

function ustarBlock(f: UstarFields): Buffer {
  const block = Buffer.alloc(BLOCK);
  block.write(f.name, 0, 100, 'latin1');
  octal(block, 100, 8, f.mode & 0o7777);
  octal(block, 108, 8, f.uid);
  octal(block, 116, 8, f.gid);
  octal(block, 124, 12, f.size);
  octal(block, 136, 12, Math.max(0, Math.min(f.mtime, 0o77777777777)));
  block.write(f.typeflag, 156, 1, 'latin1');
  block.write(f.linkname, 157, 100, 'latin1');
  block.write('ustar\u000000', 257, 8, 'latin1');
  octal(block, 329, 8, f.devmajor);
  octal(block, 337, 8, f.devminor);
  block.write(f.prefix, 345, 155, 'latin1');
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, '0')}\u0000 `, 148, 8, 'latin1');
  return block;
}

/** Zero-padded octal digits filling the field but its last byte (NUL). */
function octal(block: Buffer, offset: number, length: number, value: number): void {
  block.write(`${value.toString(8).padStart(length - 1, '0')}\u0000`, offset, length, 'latin1');
}

/**
 * A tar being written as a stream: add entries in order, awaiting each (that is where
 * back-pressure comes from), then `finish()`. A failure anywhere is passed to `fail()`, which
 * destroys the stream so that its reader sees the error.
 */
export class TarStreamWriter {
  readonly stream = new PassThrough({ highWaterMark: 1 << 20 });

  private async push(chunk: Buffer): Promise<void> {
    if (this.stream.destroyed) throw new Error('tar stream was closed by its reader');
    if (!this.stream.write(chunk)) {
      // Both listeners go once either fires: waits must not pile up listeners on the stream.
      await new Promise<void>((resolve, reject) => {
        const settle = (err?: Error) => {
          this.stream.off('drain', onDrain);
          this.stream.off('close', onClose);
          if (err) reject(err);
          else resolve();
        };
        const onDrain = () => settle();
        const onClose = () => settle(new Error('tar stream was closed by its reader'));
        this.stream.once('drain', onDrain);
        this.stream.once('close', onClose);
      });
    }
  }

  /** An entry with its data given whole (or none). */
  async add(header: TarWriteHeader, data?: Buffer): Promise<void> {
    const body = data ?? Buffer.alloc(0);
    if (body.length !== header.size) throw new Error(`tar entry ${printable(header.name)}: ${body.length} bytes for a size of ${header.size}`);
    await this.push(encodeHeader(header));
    if (body.length > 0) await this.push(Buffer.concat([body, Buffer.alloc(padding(body.length))]));
  }

  /** An entry whose data comes from a stream (or chunks) of exactly `header.size` bytes. */
  async addStream(header: TarWriteHeader, source: Readable | AsyncGenerator<Buffer>, onChunk?: (chunk: Buffer) => void): Promise<void> {
    await this.push(encodeHeader(header));
    let written = 0;
    try {
      for await (const chunk of source as AsyncIterable<Buffer>) {
        written += chunk.length;
        if (written > header.size) throw new Error(`tar entry ${printable(header.name)}: more data than its size ${header.size}`);
        onChunk?.(chunk);
        await this.push(chunk);
      }
    } finally {
      if ('destroy' in source) source.destroy();
    }
    if (written !== header.size) throw new Error(`tar entry ${printable(header.name)}: ${written} bytes for a size of ${header.size}`);
    const pad = padding(written);
    if (pad > 0) await this.push(Buffer.alloc(pad));
  }

  async finish(): Promise<void> {
    await this.push(END_OF_ARCHIVE);
    this.stream.end();
  }

  fail(err: unknown): void {
    this.stream.destroy(err instanceof Error ? err : new Error(String(err)));
  }
}
