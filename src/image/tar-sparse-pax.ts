import { printable } from './printable.ts';
import { TarFormatError } from './tar-fields.ts';
import { BLOCK, decimal, MAX_DIGITS, SegmentCollector, sparseOverBudget, type ArchiveReads, type SparseFile, type SparseLimits } from './tar-sparse.ts';

// The PAX forms of sparse files (`GNU.sparse.*` records 0.0, 0.1, and 1.0's map in the data;
// see tar-sparse.ts).

const SPARSE_KEY_PREFIX = 'GNU.sparse.';

/**
 * The `GNU.sparse.*` records of one entry's PAX headers. The segments of a 0.0 map (one record
 * per offset and per length) count against the sparse budget rather than the PAX record budget:
 * a real file has thousands.
 */
export class PaxSparseRecords {
  private major: string | undefined;
  private minor: string | undefined;
  private name: Buffer | undefined;
  private realSize: string | undefined;
  private numBlocks: string | undefined;
  private map: string | undefined;
  /** 0.0's records as they came: offset, length, offset, … */
  private readonly listed: string[] = [];

  /** Whether the records say the entry is sparse. */
  get present(): boolean {
    return this.major !== undefined || this.realSize !== undefined || this.map !== undefined || this.listed.length > 0;
  }

  /**
   * Takes a record if it is one of these: 'segment' for 0.0's offset and length records (the
   * caller does not count them as PAX records), 'field' for the others, undefined otherwise.
   */
  add(key: string, value: Buffer, limits: SparseLimits, offset: number): 'segment' | 'field' | undefined {
    if (!key.startsWith(SPARSE_KEY_PREFIX)) return undefined;
    const text = () => value.toString('latin1');
    switch (key.slice(SPARSE_KEY_PREFIX.length)) {
      case 'offset':
      case 'numbytes':
        // Two records a segment; bounded here, kept as text until the entry's header is read.
        if (this.listed.length >= 2 * limits.maxSparseSegmentsPerEntry) throw sparseOverBudget(limits, offset);
        if ((key.endsWith('offset') ? 0 : 1) !== this.listed.length % 2) throw new TarFormatError('sparse map: GNU.sparse.offset and GNU.sparse.numbytes records do not alternate', offset);
        this.listed.push(text());
        return 'segment';
      case 'major':
        this.major = text();
        return 'field';
      case 'minor':
        this.minor = text();
        return 'field';
      case 'name':
        this.name = Buffer.from(value);
        return 'field';
      case 'size':
      case 'realsize':
        this.realSize = text();
        return 'field';
      case 'numblocks':
        this.numBlocks = text();
        return 'field';
      case 'map':
        this.map = text();
        return 'field';
      default:
        return undefined;
    }
  }

  /**
   * The sparse file these records describe (`present` must be true). `storedBytes` is the
   * entry's data size in the archive; for 1.0 the map is read from the start of that data
   * through `reads`, which is left at the segments' data.
   */
  async read(storedBytes: number, reads: ArchiveReads, limits: SparseLimits, offset: number): Promise<SparseFile> {
    if (this.realSize === undefined) throw new TarFormatError('sparse file without GNU.sparse.size or GNU.sparse.realsize', offset);
    const realSize = decimal(this.realSize, 'real size', offset);
    const collector = new SegmentCollector(limits, offset);
    if (this.major !== undefined || this.minor !== undefined) {
      const version = `${this.major ?? ''}.${this.minor ?? ''}`;
      if (version === '1.0') {
        const mapBytes = await readDataMap(collector, storedBytes, reads, offset);
        return collector.finish(realSize, storedBytes - mapBytes, this.name, mapBytes);
      }
      if (version !== '0.0' && version !== '0.1') throw new TarFormatError(`unsupported sparse format ${printable(version, 32)}`, offset);
    }
    let numbers: number;
    if (this.map !== undefined) numbers = addListedPairs(collector, splitMap(this.map, collector, offset), storedBytes, offset);
    else if (this.listed.length > 0) numbers = addListedPairs(collector, this.listed, storedBytes, offset);
    else throw new TarFormatError('sparse file without a map', offset);
    if (this.numBlocks !== undefined && decimal(this.numBlocks, 'segment count', offset) !== numbers / 2) {
      throw new TarFormatError('sparse map: GNU.sparse.numblocks does not match the map', offset);
    }
    return collector.finish(realSize, storedBytes, this.name, 0);
  }
}

/** 0.1's `offset,length,…` as its fields, counted before they are split (a record may be 1 MiB of commas). */
function splitMap(map: string, collector: SegmentCollector, offset: number): string[] {
  if (map === '') throw new TarFormatError('sparse map: empty GNU.sparse.map', offset);
  let fields = 1;
  for (let at = map.indexOf(','); at !== -1; at = map.indexOf(',', at + 1)) fields++;
  collector.announce(Math.ceil(fields / 2));
  return map.split(',');
}

/** Adds (offset, length) pairs given as decimal text; returns how many numbers there were. */
function addListedPairs(collector: SegmentCollector, fields: readonly string[], storedBytes: number, offset: number): number {
  if (fields.length % 2 !== 0) throw new TarFormatError('sparse map: an offset without a length', offset);
  for (let i = 0; i < fields.length; i += 2) {
    collector.add(decimal(fields[i] ?? '', 'offset', offset), decimal(fields[i + 1] ?? '', 'length', offset), storedBytes);
  }
  return fields.length;
}

/**
 * PAX 1.0's map at the start of the data: the number of segments, then an offset and a length
 * per segment, each a decimal line; padded with anything to the next 512 bytes. Read a block at
 * a time, a number may span blocks. Returns the bytes it took (whole blocks).
 */
async function readDataMap(collector: SegmentCollector, storedBytes: number, reads: ArchiveReads, offset: number): Promise<number> {
  let consumed = 0;
  let block: Buffer = Buffer.alloc(0);
  let at = 0;
  /** The next decimal line, reading blocks as needed. */
  const nextNumber = async (what: string): Promise<number> => {
    let digits = '';
    for (;;) {
      if (at === block.length) {
        if (consumed + BLOCK > storedBytes) throw new TarFormatError("sparse map: longer than the entry's data", offset);
        const next = await reads.read(BLOCK);
        if (next === null || next.length < BLOCK) throw new TarFormatError('truncated sparse map', offset);
        block = next;
        at = 0;
        consumed += BLOCK;
      }
      const byte = block[at++] ?? 0;
      if (byte === 0x0a) return decimal(digits, what, offset);
      if (byte < 0x30 || byte > 0x39 || digits.length >= MAX_DIGITS) throw new TarFormatError(`sparse map: invalid ${what}`, offset);
      digits += String.fromCharCode(byte);
    }
  };
  const count = await nextNumber('segment count');
  collector.announce(count);
  const dataBytes = () => storedBytes - consumed;
  // The data's size is known only once the map's blocks are read: check the sum against an upper bound, then exactly.
  for (let i = 0; i < count; i++) collector.add(await nextNumber('offset'), await nextNumber('length'), dataBytes());
  return consumed;
}
