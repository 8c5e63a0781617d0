/**
 * The tar index under hostile structure (issue 12, attacks 1 and 9): global PAX headers,
 * record and attribute floods, extension headers without end, PAX numbers that are not
 * numbers. Archives are made block by block (test/support/raw-tar.ts).
 */
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { describe, expect, it, vi } from 'vitest';
import { BudgetExceededError } from '../../src/budget.ts';
import { indexTar, TarFormatError, type IndexedTarEntry } from '../../src/image/tar-index.ts';
import type { TarIndexLimits } from '../../src/image/tar-limits.ts';
import { emptyFiles, END_OF_ARCHIVE, entry, globalXattrBomb, paxHeader, paxRecord, xattrRecords } from '../support/raw-tar.ts';
import { rejection } from '../support/rejection.ts';

async function index(parts: Buffer[] | Buffer, limits?: Partial<TarIndexLimits>, chunk?: number): Promise<IndexedTarEntry[]> {
  const tar = Buffer.isBuffer(parts) ? parts : Buffer.concat(parts);
  const chunks = chunk ? Array.from({ length: Math.ceil(tar.length / chunk) }, (_, i) => tar.subarray(i * chunk, (i + 1) * chunk)) : [tar];
  const out: IndexedTarEntry[] = [];
  for await (const e of indexTar(Readable.from(chunks), limits)) out.push(e);
  return out;
}

describe('global PAX headers (attack 1)', () => {
  it('~1 MiB of global xattrs before 8,000 empty files fails at the global header, having yielded no entry', async () => {
    const upload = globalXattrBomb();
    expect(upload.length).toBeLessThan(2 * 1024 ** 2);
    const yielded: IndexedTarEntry[] = [];
    const err = await rejection(
      (async () => {
        for await (const e of indexTar(Readable.from([upload]).pipe(createGunzip()))) yielded.push(e);
      })(),
    );
    expect(err).toBeInstanceOf(BudgetExceededError);
    expect(err).toMatchObject({ setting: 'BALER_MAX_GLOBAL_PAX_RECORDS', limit: 1000 });
    expect(err.message).toBe('more than 1000 global PAX records in one tar (at byte 0) (the budget BALER_MAX_GLOBAL_PAX_RECORDS is 1000)');
    expect(yielded).toEqual([]);
  });

  it('global attributes count against every entry: over its budget they fail before any entry', async () => {
    const many = [paxHeader(xattrRecords(129), 'g'), ...emptyFiles(3), END_OF_ARCHIVE];
    const err = await rejection(index(many));
    expect(err).toMatchObject({ name: 'BudgetExceededError', setting: 'BALER_MAX_XATTRS_PER_ENTRY' });
    const big = [paxHeader(xattrRecords(2, 40_000), 'g'), ...emptyFiles(3), END_OF_ARCHIVE];
    expect(await rejection(index(big))).toMatchObject({ setting: 'BALER_MAX_XATTR_BYTES_PER_ENTRY' });
    // An entry's own attributes and the global ones add up; one it overrides counts once.
    const globals = paxHeader(xattrRecords(100), 'g');
    const own = entry(
      { name: 'own' },
      undefined,
      xattrRecords(29).map(([key]) => [key.replace('.a', '.b'), 'x']),
    );
    expect(await rejection(index([globals, own, END_OF_ARCHIVE]))).toMatchObject({ setting: 'BALER_MAX_XATTRS_PER_ENTRY' });
    const overriding = entry(
      { name: 'own' },
      undefined,
      xattrRecords(28).map(([key]) => [key, 'own']),
    );
    const [one] = await index([globals, overriding, END_OF_ARCHIVE]);
    expect(Object.keys(one?.xattrs ?? {})).toHaveLength(100);
    expect(one?.xattrs['user.a0']).toBe('own');
    expect(one?.xattrs['user.a99']).toBe('vvvvvvvv');
  });

  it('keeps global records once: 8,000 entries share one attributes object, at O(1) each', async () => {
    const entries = await index([paxHeader([...xattrRecords(100), ['mtime', '1700000000.5']], 'g'), ...emptyFiles(8000), END_OF_ARCHIVE]);
    expect(entries).toHaveLength(8000);
    expect(new Set(entries.map((e) => e.xattrs)).size).toBe(1);
    expect(Object.keys(entries[7999]?.xattrs ?? {})).toHaveLength(100);
    expect(Object.isFrozen(entries[0]?.xattrs)).toBe(true);
    expect(entries[7999]?.mtime).toBe(1700000000);
  });

  it('follows POSIX: a later global header changes the globals; an empty value in an entry deletes one', async () => {
    const entries = await index([
      paxHeader(
        [
          ['mtime', '100'],
          ['SCHILY.xattr.user.g', '1'],
        ],
        'g',
      ),
      entry({ name: 'a', mtime: 7 }),
      paxHeader(
        [
          ['mtime', '200'],
          ['SCHILY.xattr.user.g', '2'],
        ],
        'g',
      ),
      entry({ name: 'b', mtime: 7 }),
      entry({ name: 'c', mtime: 7 }, undefined, [['mtime', '']]),
      paxHeader([['mtime', '']], 'g'),
      entry({ name: 'd', mtime: 7 }),
      END_OF_ARCHIVE,
    ]);
    expect(entries.map((e) => [e.name, e.mtime, e.xattrs['user.g']])).toEqual([
      ['a', 100, '1'],
      ['b', 200, '2'],
      ['c', 7, '2'],
      ['d', 7, '2'],
    ]);
  });
});

describe('PAX record budgets', () => {
  it('counts the records of one entry over all its extended headers', async () => {
    const records = Array.from({ length: 600 }, (_, i): [string, string] => [`comment${i}`, 'x']);
    await expect(index([paxHeader(records), entry({ name: 'a' }), END_OF_ARCHIVE])).resolves.toHaveLength(1);
    const err = await rejection(index([paxHeader(records), paxHeader(records), entry({ name: 'a' }), END_OF_ARCHIVE]));
    expect(err).toMatchObject({ setting: 'BALER_MAX_PAX_RECORDS_PER_ENTRY' });
    // Records are counted per entry: the next one starts again.
    const twoEntries = [paxHeader(records), entry({ name: 'a' }), paxHeader(records), entry({ name: 'b' }), END_OF_ARCHIVE];
    await expect(index(twoEntries)).resolves.toHaveLength(2);
  });

  it('counts an empty extended header as a record, so that they cannot repeat for free', async () => {
    const empties = Array.from({ length: 1001 }, () => paxHeader([]));
    expect(await rejection(index([...empties, entry({ name: 'a' }), END_OF_ARCHIVE]))).toMatchObject({ setting: 'BALER_MAX_PAX_RECORDS_PER_ENTRY' });
    const longNames = Array.from({ length: 1001 }, () => entry({ name: '././@LongLink', type: 'L' }, Buffer.from('x\0')));
    expect(await rejection(index([...longNames, entry({ name: 'a' }), END_OF_ARCHIVE]))).toMatchObject({ setting: 'BALER_MAX_PAX_RECORDS_PER_ENTRY' });
  });

  it('counts global records over all global headers of the archive', async () => {
    const headers = Array.from({ length: 11 }, (_, i) => paxHeader([[`comment`, String(i)]], 'g'));
    await expect(index([...headers, END_OF_ARCHIVE], { maxGlobalPaxRecords: 11 })).resolves.toEqual([]);
    expect(await rejection(index([...headers, END_OF_ARCHIVE], { maxGlobalPaxRecords: 10 }))).toMatchObject({ setting: 'BALER_MAX_GLOBAL_PAX_RECORDS', limit: 10 });
  });

  it('sums the extension headers of the whole archive: long paths on many entries', async () => {
    const longPath = (i: number) => `${'d'.repeat(200)}/${'e'.repeat(200)}/${i}`;
    const parts = Array.from({ length: 100 }, (_, i) => entry({ name: `p${i}` }, undefined, [['path', longPath(i)]]));
    const total = parts.reduce((sum, _, i) => sum + paxRecord('path', longPath(i)).length, 0);
    const entries = await index([...parts, END_OF_ARCHIVE], { maxExtensionBytesTotal: total });
    expect(entries[99]?.name).toBe(longPath(99));
    const err = await rejection(index([...parts, END_OF_ARCHIVE], { maxExtensionBytesTotal: total - 1 }));
    expect(err).toMatchObject({ setting: 'BALER_MAX_TAR_EXTENSION_BYTES' });
    expect(err.message).toMatch(new RegExp(`more than ${total - 1} bytes of extension headers in one tar`));
  });

  it('refuses more entries than a layer may hold, naming the setting; a fixed limit of an archive is a format error', async () => {
    const tar = [...emptyFiles(11), END_OF_ARCHIVE];
    expect(await rejection(index(tar, { maxEntries: 10 }))).toMatchObject({ setting: 'BALER_MAX_LAYER_ENTRIES', limit: 10 });
    expect(await rejection(index(tar, { maxEntries: 10, maxEntriesSetting: undefined }))).toBeInstanceOf(TarFormatError);
  });
});

describe('PAX numbers (attack 9)', () => {
  const withMtime = (mtime: string) => index([entry({ name: 'a', mtime: 5 }, undefined, [['mtime', mtime]]), END_OF_ARCHIVE]);

  it('takes decimal times with a sign and a fraction, rounding down to whole seconds', async () => {
    for (const [text, seconds] of [
      ['1796232031.761482203', 1796232031],
      ['-1.5', -2],
      ['+7', 7],
      ['0', 0],
    ] as const) {
      const [e] = await withMtime(text);
      expect(e?.mtime, text).toBe(seconds);
    }
  });

  it('refuses a time that is not a number, or too large for one', async () => {
    for (const text of ['abc', '1e400', '1e3', '0x10', '1.', '.5', ' 1', 'Infinity', 'NaN']) {
      const err = await rejection(withMtime(text));
      expect(err, text).toBeInstanceOf(TarFormatError);
      expect(err.message, text).toMatch(/invalid PAX mtime/);
    }
    expect((await rejection(withMtime('9'.repeat(400)))).message).toMatch(/PAX mtime out of range/);
  });

  it('refuses sizes and ids that are not decimal counts, and record lengths that are not decimal', async () => {
    for (const [key, value] of [
      ['size', '1e3'],
      ['uid', '-1'],
      ['gid', '0x10'],
      ['size', '99999999999999999999'],
    ] as const) {
      const err = await rejection(index([entry({ name: 'a' }, undefined, [[key, value]]), END_OF_ARCHIVE]));
      expect(err, `${key}=${value}`).toBeInstanceOf(TarFormatError);
    }
    for (const raw of ['0x10 a=b\n', '1e1 a=bcdef\n', ' 9 a=bc\n', `${'1'.repeat(20)} a=b\n`]) {
      const err = await rejection(index([paxHeader(Buffer.from(raw)), entry({ name: 'a' }), END_OF_ARCHIVE]));
      expect(err.message, raw).toMatch(/malformed PAX record/);
    }
  });

  it('shows a bad value escaped and cut short', async () => {
    const err = await rejection(withMtime(`\x1b[31m${'9'.repeat(100_000)}x`));
    expect(err.message.length).toBeLessThan(400);
    expect(err.message).toContain('\\x1b[31m');
    expect(err.message).not.toContain('\x1b');
  });
});

describe('the reader', () => {
  it('reads a 1 MiB extension header that arrives in 512-byte chunks with O(n) copying', async () => {
    const tar = Buffer.concat([paxHeader([['comment', 'c'.repeat((1 << 20) - 600)]]), entry({ name: 'a' }), END_OF_ARCHIVE]);
    const concat = vi.spyOn(Buffer, 'concat');
    try {
      await expect(index(tar, undefined, 512)).resolves.toHaveLength(1);
      // Bytes copied by joining chunks: about the archive once (growing one buffer: ~n²/1024).
      const copied = concat.mock.results.reduce((sum, r) => sum + (r.value as Buffer).length, 0);
      expect(copied).toBeLessThan(2 * tar.length);
    } finally {
      concat.mockRestore();
    }
  });

  it('still reads a record whose value holds the separator bytes', async () => {
    const [e] = await index([entry({ name: 'a' }, undefined, [['path', 'x y=z\n1 2']]), END_OF_ARCHIVE]);
    expect(e?.name).toBe('x y=z\n1 2');
    expect(paxRecord('k', 'v').toString()).toBe('6 k=v\n');
  });
});
