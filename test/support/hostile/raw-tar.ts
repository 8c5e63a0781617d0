/**
 * A small tar writer of our own for hostile inputs: it writes whatever it is told (global PAX
 * headers, any PAX value, millions of entries) without the checks baler's own encoder makes,
 * streamed to a file (optionally gzip'd) so that huge archives never sit in memory.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import { createGzip, type Gzip } from 'node:zlib';

export type RawType = 'file' | 'directory' | 'pax' | 'pax-global';

const FLAGS: Record<RawType, string> = {
  file: '0',
  directory: '5',
  pax: 'x',
  'pax-global': 'g',
};

export interface RawHeader {
  name: string;
  type?: RawType;
  size?: number;
  mode?: number;
  mtime?: number;
  linkname?: string;
}

const BLOCK = 512;

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

/** One ustar header block; names longer than 100 bytes must go in a PAX `path` record first. */
export function rawHeader(h: RawHeader): Buffer {
  const block = Buffer.alloc(BLOCK);
  writeHeader(block, 0, h);
  return block;
}

function writeHeader(target: Buffer, at: number, h: RawHeader): void {
  const type = h.type ?? 'file';
  const base = template(type, h.mode ?? (type === 'directory' ? 0o755 : 0o644), h.size ?? 0, h.mtime ?? 0);
  base.block.copy(target, at);
  // The template's checksum counts an empty name and link name: add theirs.
  let sum = base.sum;
  const nameBytes = target.write(h.name.slice(0, 100), at, 'utf8');
  for (let i = at; i < at + nameBytes; i++) sum += target[i] as number;
  if (h.linkname) {
    const linkBytes = target.write(h.linkname.slice(0, 100), at + 157, 'utf8');
    for (let i = at + 157; i < at + 157 + linkBytes; i++) sum += target[i] as number;
  }
  target.write(octal(sum, 7) + ' ', at + 148, 'latin1');
}

// Millions of headers differ only in their names: each is a copy of a template for its type,
// mode, size and mtime, whose checksum is kept with it.
const TEMPLATES = new Map<string, { block: Buffer; sum: number }>();

function template(type: RawType, mode: number, size: number, mtime: number): { block: Buffer; sum: number } {
  const key = `${type} ${mode} ${size} ${mtime}`;
  let found = TEMPLATES.get(key);
  if (!found) {
    const block = Buffer.alloc(BLOCK);
    block.write(octal(mode, 8), 100, 'latin1');
    block.write(octal(0, 8), 108, 'latin1');
    block.write(octal(0, 8), 116, 'latin1');
    block.write(octal(size, 12), 124, 'latin1');
    block.write(octal(mtime, 12), 136, 'latin1');
    block.write(' '.repeat(8), 148, 'latin1');
    block.write(FLAGS[type], 156, 'latin1');
    block.write('ustar\0', 257, 'latin1');
    block.write('00', 263, 'latin1');
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += block[i] as number;
    found = { block, sum };
    TEMPLATES.set(key, found);
  }
  return found;
}

/** PAX records `<len> <key>=<value>\n`, len counting the whole record. */
export function paxRecords(records: Iterable<[string, string]>): Buffer {
  const parts: Buffer[] = [];
  for (const [key, value] of records) {
    const body = ` ${key}=${value}\n`;
    const bodyBytes = Buffer.byteLength(body);
    let len = bodyBytes + String(bodyBytes).length;
    if (String(len).length !== String(bodyBytes).length) len = bodyBytes + String(len).length;
    parts.push(Buffer.from(`${len}${body}`));
  }
  return Buffer.concat(parts);
}

/**
 * A tar file being written: headers and data go into a 1 MiB buffer written out when full,
 * with backpressure. `close()` writes the end marker (two zero blocks) unless told not to.
 */
export class RawTarFile {
  private readonly file: WriteStream;
  private readonly sink: WriteStream | Gzip;
  private buffer = Buffer.alloc(1 << 20);
  private used = 0;

  constructor(
    readonly path: string,
    opts: { gzip?: boolean } = {},
  ) {
    this.file = createWriteStream(path);
    if (opts.gzip) {
      const gzip = createGzip({ level: 1 });
      gzip.pipe(this.file);
      this.sink = gzip;
    } else {
      this.sink = this.file;
    }
  }

  /** Room for `bytes` more (written out first when the buffer cannot take them). */
  private async room(bytes: number): Promise<void> {
    if (this.used + bytes <= this.buffer.length) return;
    await this.flush();
    if (bytes > this.buffer.length) this.buffer = Buffer.alloc(bytes);
  }

  private async flush(): Promise<void> {
    if (this.used === 0) return;
    const full = this.buffer.subarray(0, this.used);
    // The sink keeps the chunk until written: the next entries go into a new buffer.
    this.buffer = Buffer.alloc(this.buffer.length);
    this.used = 0;
    if (!this.sink.write(full)) await once(this.sink, 'drain');
  }

  /** An entry with its data (none for anything but files). */
  async entry(h: RawHeader, data?: Buffer): Promise<void> {
    const size = data?.length ?? 0;
    const padded = size + ((BLOCK - (size % BLOCK)) % BLOCK);
    await this.room(BLOCK + padded);
    writeHeader(this.buffer, this.used, { ...h, size });
    data?.copy(this.buffer, this.used + BLOCK);
    // The buffer is zeroed when allocated: the padding is already there.
    this.used += BLOCK + padded;
  }

  /** Bytes as they are (a hand-made header block, GNU sparse extension blocks). */
  async raw(bytes: Buffer): Promise<void> {
    await this.room(bytes.length);
    bytes.copy(this.buffer, this.used);
    this.used += bytes.length;
  }

  /**
   * An entry of `size` bytes of data given in pieces (a sparse map of millions of lines), so
   * that they are never held at once; `header` is written as it is when given (a GNU `S` one).
   */
  async streamedEntry(h: RawHeader, size: number, pieces: Iterable<Buffer>, header = rawHeader({ ...h, size })): Promise<void> {
    await this.raw(header);
    let written = 0;
    for (const piece of pieces) {
      await this.raw(piece);
      written += piece.length;
    }
    if (written !== size) throw new Error(`${h.name}: ${written} bytes of data written, the header says ${size}`);
    // The buffer is zeroed when allocated: skipping the padding writes it.
    const padding = (BLOCK - (size % BLOCK)) % BLOCK;
    await this.room(padding);
    this.used += padding;
  }

  /** A PAX extended header (`x`, for the next entry) or a global one (`g`, for all that follow). */
  async pax(records: Iterable<[string, string]>, scope: 'next' | 'global' = 'next'): Promise<void> {
    const global = scope === 'global';
    await this.entry({ name: global ? 'pax_global_header' : 'PaxHeader', type: global ? 'pax-global' : 'pax' }, paxRecords(records));
  }

  async close(opts: { endMarker?: boolean } = {}): Promise<string> {
    if (opts.endMarker !== false) {
      await this.room(2 * BLOCK);
      this.used += 2 * BLOCK;
    }
    await this.flush();
    const finished = once(this.file, 'close');
    this.sink.end();
    await finished;
    return this.path;
  }
}
