/**
 * Sparse maps no tool writes (issue 13, "think like an attacker"): maps out of order,
 * overlapping, past the file's end, not matching the data, absurd sizes, and maps over the
 * budgets. Archives are made block by block (test/support/raw-tar.ts), or by GNU tar and then
 * mutated.
 */
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { BudgetExceededError } from '../../src/budget.ts';
import { indexTar, TarFormatError, type IndexedTarEntry } from '../../src/image/tar-index.ts';
import type { TarIndexLimits } from '../../src/image/tar-limits.ts';
import { END_OF_ARCHIVE, entry, header } from '../support/raw-tar.ts';
import { run } from '../support/run.ts';
import { rejection } from '../support/rejection.ts';

async function index(parts: Buffer[], limits?: Partial<TarIndexLimits>, chunk?: number): Promise<IndexedTarEntry[]> {
  const tar = Buffer.concat(parts);
  const chunks = chunk ? Array.from({ length: Math.ceil(tar.length / chunk) }, (_, i) => tar.subarray(i * chunk, (i + 1) * chunk)) : [tar];
  const out: IndexedTarEntry[] = [];
  for await (const e of indexTar(Readable.from(chunks), limits)) out.push(e);
  return out;
}

function padded(data: Buffer): Buffer {
  return Buffer.concat([data, Buffer.alloc((512 - (data.length % 512)) % 512)]);
}

/** PAX 0.1: the map in one record. */
function pax01(map: string, realSize: string | number, data: Buffer): Buffer {
  return entry({ name: 'GNUSparseFile.1/f' }, data, [
    ['GNU.sparse.major', '0'],
    ['GNU.sparse.minor', '1'],
    ['GNU.sparse.name', 'f'],
    ['GNU.sparse.realsize', String(realSize)],
    ['GNU.sparse.map', map],
  ]);
}

/** PAX 0.0: a record per offset and per length. */
function pax00(pairs: number[], realSize: number, data: Buffer): Buffer {
  const records: Array<[string, string]> = [['GNU.sparse.size', String(realSize)]];
  for (const [i, n] of pairs.entries()) records.push([i % 2 === 0 ? 'GNU.sparse.offset' : 'GNU.sparse.numbytes', String(n)]);
  return entry({ name: 'f' }, data, records);
}

/** PAX 1.0: the map as decimal lines at the start of the data, padded to 512 bytes. */
function pax10(lines: Array<number | string>, realSize: number, data: Buffer, major = '1'): Buffer {
  const map = padded(Buffer.from(lines.map((l) => `${l}\n`).join('')));
  return entry({ name: 'GNUSparseFile.0/f' }, Buffer.concat([map, data]), [
    ['GNU.sparse.major', major],
    ['GNU.sparse.minor', '0'],
    ['GNU.sparse.name', 'f'],
    ['GNU.sparse.realsize', String(realSize)],
  ]);
}

function writePairs(block: Buffer, at: number, pairs: number[]): void {
  for (let i = 0; i < pairs.length; i++) block.write(`${(pairs[i] as number).toString(8).padStart(11, '0')}\0`, at + i * 12, 12, 'latin1');
}

function checksum(block: Buffer): void {
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
}

/** GNU's old form: typeflag S, up to 4 pairs in the header, then extension blocks of 21. */
function gnuSparse(pairs: number[], realSize: number, data: Buffer, extension: number[][] = [], extendedForever = false): Buffer {
  const block = header({ name: 'f', type: 'S', size: data.length });
  block.write('ustar  \0', 257, 8, 'latin1');
  writePairs(block, 386, pairs);
  block[482] = extension.length > 0 ? 1 : 0;
  block.write(`${realSize.toString(8).padStart(11, '0')}\0`, 483, 12, 'latin1');
  checksum(block);
  const blocks = extension.map((ext, i) => {
    const b = Buffer.alloc(512);
    writePairs(b, 0, ext);
    b[504] = i < extension.length - 1 || extendedForever ? 1 : 0;
    return b;
  });
  return Buffer.concat([block, ...blocks, padded(data)]);
}

const DATA = Buffer.from('0123456789abcdefghij');

describe('sparse maps that describe a file', () => {
  it('PAX 0.1: empty segments dropped, touching ones joined, the real name and size', async () => {
    const [file] = await index([pax01('0,0,10,5,15,5,100,0', 100, DATA.subarray(0, 10)), END_OF_ARCHIVE]);
    expect(file).toMatchObject({ name: 'f', type: 'file', size: 100 });
    expect(Array.from(file?.sparse ?? [])).toEqual([10, 10]);
  });

  it('PAX 1.0: a map over several blocks, read in 7-byte chunks, and the data right after it', async () => {
    const pairs = Array.from({ length: 200 }, (_, i) => [i * 1000, 1]).flat();
    const data = Buffer.alloc(200, 0x61);
    const tar = [pax10([200, ...pairs], 200_000, data), header({ name: 'after', size: 0 }), END_OF_ARCHIVE];
    const entries = await index(tar, undefined, 7);
    expect(entries.map((e) => [e.name, e.size])).toEqual([
      ['f', 200_000],
      ['after', 0],
    ]);
    expect(entries[0]?.sparse?.length).toBe(400);
    expect(Buffer.concat(tar).subarray(entries[0]?.dataOffset, (entries[0]?.dataOffset ?? 0) + 200)).toEqual(data);
  });

  it('PAX 0.0: 600 segments do not count against the PAX record budget', async () => {
    const pairs = Array.from({ length: 600 }, (_, i) => [i * 10, 1]).flat();
    const [file] = await index([pax00(pairs, 6000, Buffer.alloc(600)), END_OF_ARCHIVE], { maxPaxRecordsPerEntry: 10 });
    expect(file?.sparse?.length).toBe(1200);
  });

  it('GNU S: pairs in the header and two extension blocks', async () => {
    const ext = Array.from({ length: 30 }, (_, i) => [(i + 4) * 100, 1]);
    const [file] = await index([gnuSparse([0, 1, 100, 1, 200, 1, 300, 1], 10_000, Buffer.alloc(34), [ext.slice(0, 21).flat(), ext.slice(21).flat()]), END_OF_ARCHIVE]);
    expect(file).toMatchObject({ name: 'f', size: 10_000 });
    expect(file?.sparse?.length).toBe(68);
  });
});

describe('malformed sparse maps are TarFormatErrors', () => {
  const cases: Array<[string, Buffer, RegExp]> = [
    ['overlapping segments', pax01('0,10,5,10', 100, DATA), /overlap or are out of order/],
    ['segments out of order', pax01('50,10,0,10', 100, DATA), /overlap or are out of order/],
    ['a segment past the real size', pax01('95,10', 100, DATA.subarray(0, 10)), /past the file's size of 100/],
    ['an empty segment past the real size', pax01('0,10,500,0', 100, DATA.subarray(0, 10)), /past the file's size/],
    ['less data than the segments hold', pax01('0,10,20,10', 100, DATA.subarray(0, 15)), /more than the 15 bytes/],
    ['more data than the segments hold', pax01('0,10', 100, DATA), /hold 10 bytes but the entry has 20/],
    ['an absurd real size', pax01('0,10', '99999999999999999999', DATA.subarray(0, 10)), /invalid real size|too large/],
    ['a length that is not a number', pax01('0,x', 100, DATA), /invalid length/],
    ['an offset without a length', pax01('0,10,20', 100, DATA), /an offset without a length/],
    ['no real size', entry({ name: 'f' }, DATA, [['GNU.sparse.map', '0,20']]), /without GNU.sparse.size/],
    ['a version no tool writes', pax10([1, 0, 20], 100, DATA, '2'), /unsupported sparse format 2.0/],
    ['a 1.0 map that ends before its segments do', pax10([1000, 0], 100, Buffer.alloc(0)), /invalid length/],
    ['a 1.0 map line that is not a number', pax10([1, '0x10', 20], 100, DATA), /invalid offset/],
    ['a 1.0 map line of 40 digits', pax10([1, '9'.repeat(40), 20], 100, DATA), /invalid offset/],
    [
      '0.0 records out of turn',
      entry({ name: 'f' }, DATA, [
        ['GNU.sparse.size', '100'],
        ['GNU.sparse.numbytes', '20'],
      ]),
      /do not alternate/,
    ],
    [
      'a 0.0 segment count that does not match',
      entry({ name: 'f' }, DATA, [
        ['GNU.sparse.size', '100'],
        ['GNU.sparse.numblocks', '2'],
        ['GNU.sparse.offset', '0'],
        ['GNU.sparse.numbytes', '20'],
      ]),
      /numblocks does not match/,
    ],
    ['GNU S with a pair past the real size', gnuSparse([0, 10, 95, 10], 100, DATA), /past the file's size/],
    ['GNU S with unsorted pairs', gnuSparse([50, 10, 0, 10], 100, DATA), /out of order/],
  ];
  it.each(cases)('%s', async (_, tar, message) => {
    const err = await rejection(index([tar, END_OF_ARCHIVE]));
    expect(err).toBeInstanceOf(TarFormatError);
    expect(err.message).toMatch(message);
  });

  it('a 1.0 map that runs past the data', async () => {
    // Exactly one block of map text, announcing more: the next line would be in the data.
    const lines = [100, ...Array.from({ length: 98 }, () => '0000'), '00000', '00000', '00000'];
    expect(lines.join('\n').length + 1).toBe(512);
    const err = await rejection(index([pax10(lines, 100, Buffer.alloc(0)), END_OF_ARCHIVE]));
    expect(err).toBeInstanceOf(TarFormatError);
    expect(err.message).toMatch(/longer than the entry's data/);
  });

  it('GNU S whose archive ends inside the extension blocks', async () => {
    const cut = gnuSparse([0, 20], 100, DATA, [[]], true).subarray(0, 1024);
    const err = await rejection(index([cut]));
    expect(err).toBeInstanceOf(TarFormatError);
    expect(err.message).toMatch(/truncated sparse map/);
  });
});

describe('the sparse budgets', () => {
  const setting = 'BALER_MAX_SPARSE_SEGMENTS_PER_ENTRY';

  it('0.1: a map over BALER_MAX_SPARSE_SEGMENTS_PER_ENTRY fails naming it', async () => {
    const map = Array.from({ length: 11 }, (_, i) => `${i * 10},1`).join(',');
    const err = await rejection(index([pax01(map, 1000, Buffer.alloc(11)), END_OF_ARCHIVE], { maxSparseSegmentsPerEntry: 10 }));
    expect(err).toBeInstanceOf(BudgetExceededError);
    expect(err).toMatchObject({ setting, limit: 10 });
  });

  it('0.0: the records over it fail as they are read, before the entry', async () => {
    const pairs = Array.from({ length: 11 }, (_, i) => [i * 10, 1]).flat();
    expect(await rejection(index([pax00(pairs, 1000, Buffer.alloc(11)), END_OF_ARCHIVE], { maxSparseSegmentsPerEntry: 10 }))).toMatchObject({ setting });
  });

  it('1.0: a map announcing a billion segments fails at its first line, without reading them', async () => {
    const err = await rejection(index([pax10([1_000_000_000], 1000, Buffer.alloc(0)), END_OF_ARCHIVE]));
    expect(err).toMatchObject({ setting, limit: 100_000 });
  });

  it('GNU S: empty extension blocks count too, so a chain of them cannot go on for free', async () => {
    const chain = gnuSparse(
      [0, 20],
      100,
      DATA,
      Array.from({ length: 20 }, () => []),
      true,
    );
    expect(await rejection(index([chain, END_OF_ARCHIVE], { maxSparseSegmentsPerEntry: 10 }))).toMatchObject({ setting });
  });

  it('every segment counts 16 bytes against BALER_MAX_TAR_EXTENSION_BYTES, over all the entries of a tar', async () => {
    const map = Array.from({ length: 100 }, (_, i) => `${i * 10},1`).join(',');
    const files = Array.from({ length: 20 }, () => pax01(map, 1000, Buffer.alloc(100)));
    // 20 headers of ~700 bytes and 2,000 segments (32,000 bytes): over 30,000.
    const err = await rejection(index([...files, END_OF_ARCHIVE], { maxExtensionBytesTotal: 30_000 }));
    expect(err).toMatchObject({ setting: 'BALER_MAX_TAR_EXTENSION_BYTES' });
    expect(await index([...files, END_OF_ARCHIVE], { maxExtensionBytesTotal: 60_000 })).toHaveLength(20);
  });
});

describe('mutated sparse tars from GNU tar', () => {
  it('index to entries, a TarFormatError or a budget error: nothing else, whatever byte of the headers and maps changes', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'baler-sparse-fuzz-'));
    try {
      const script = `cd ${dir} && truncate -s 2M f && for i in $(seq 0 30); do printf x | dd of=f bs=1 seek=$((i * 65536)) conv=notrunc status=none; done
        for a in '--format=gnu' '--format=posix --sparse-version=0.0' '--format=posix --sparse-version=0.1' '--format=posix --sparse-version=1.0'; do tar $a -S -cf "t$RANDOM.tar" f; done`;
      expect((await run('bash', ['-ec', script])).code).toBe(0);
      const tars = await Promise.all((await readdir(dir)).filter((n) => n.endsWith('.tar')).map((n) => readFile(join(dir, n))));
      let seed = 13;
      const random = (n: number) => {
        seed = (seed * 1103515245 + 12345) % 2 ** 31;
        return seed % n;
      };
      const outcomes = new Map<string, number>();
      for (let i = 0; i < 2000; i++) {
        const tar = Buffer.from(tars[i % tars.length] as Buffer);
        // The first 4 blocks: headers, PAX records, GNU extension blocks, a 1.0 map.
        for (let flips = 1 + random(3); flips > 0; flips--) tar[random(2048)] = random(2) === 0 ? random(256) : '0123456789,\n'.charCodeAt(random(12));
        const outcome = await index([tar], { maxSparseSegmentsPerEntry: 1000 }).then(
          () => 'ok',
          (err: unknown) => (err instanceof TarFormatError || err instanceof BudgetExceededError ? (err as Error).name : `unexpected: ${String(err)}`),
        );
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      }
      expect([...outcomes.keys()].filter((o) => o.startsWith('unexpected'))).toEqual([]);
      expect(outcomes.get('ok')).toBeGreaterThan(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
