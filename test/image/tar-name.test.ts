/**
 * Names as bytes (tar-name.ts): the codec against Python's own `surrogateescape` (the decoding
 * it copies, run by the interpreter we did not write), round trips over random byte strings,
 * the byte-order comparator, and how printable() shows the bytes that are not UTF-8.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { printable } from '../../src/image/printable.ts';
import { compareNames, decodeName, encodedNameLength, encodeName, isCanonicalName, UnencodableNameError } from '../../src/image/tar-name.ts';
import { run } from '../support/run.ts';

/** Byte strings weighted towards the interesting ones: UTF-8 pieces, truncated and broken sequences. */
const PIECES = [
  'caf\xc3\xa9',
  'caf\xe9',
  '\xff',
  '\xfe',
  '\xc3',
  '\xa9',
  '\xed\xa0\x80',
  '\xed\xb3\xa9',
  '\xe2\x82',
  '\xf0\x9f\x98\x80',
  '\xf0\x9f\x98',
  '\xf4\x90\x80\x80',
  '\xc0\xaf',
  '\xe0\x80\xaf',
  '\xef\xbf\xbd',
  '\xee\x80\x80',
  '\xef\xbf\xbf',
  '/',
  '.',
  'a',
  '\x00',
].map((text) => Buffer.from(text, 'latin1'));
const byteStrings = fc.oneof(
  fc.uint8Array({ maxLength: 40 }).map((bytes) => Buffer.from(bytes)),
  fc.array(fc.constantFrom(...PIECES), { maxLength: 8 }).map((parts) => Buffer.concat(parts)),
);

describe('decodeName / encodeName', () => {
  it('round-trips every byte string exactly', () => {
    fc.assert(
      fc.property(byteStrings, (bytes) => {
        const name = decodeName(bytes);
        expect(encodeName(name)).toEqual(bytes);
        expect(encodedNameLength(name)).toBe(bytes.length);
        expect(isCanonicalName(name)).toBe(true);
      }),
      { numRuns: 5000 },
    );
  });

  it('gives two byte strings two names (injective)', () => {
    fc.assert(
      fc.property(byteStrings, byteStrings, (a, b) => {
        expect(decodeName(a) === decodeName(b)).toBe(a.equals(b));
      }),
      { numRuns: 3000 },
    );
  });

  it('decodes valid UTF-8 as Node does, and round-trips every well-formed string', () => {
    fc.assert(
      fc.property(fc.fullUnicodeString({ maxLength: 30 }), (text) => {
        const bytes = Buffer.from(text, 'utf8');
        expect(decodeName(bytes)).toBe(text);
        expect(encodeName(text)).toEqual(bytes);
      }),
    );
  });

  it('decodes as Python does with surrogateescape', async () => {
    const samples = fc.sample(byteStrings, { numRuns: 400, seed: 13 }).map((b) => b.toString('hex'));
    samples.push(...PIECES.map((b) => b.toString('hex')));
    const script = ['import json, sys', 'for line in sys.stdin.read().split():', '    print(json.dumps(bytes.fromhex(line[1:]).decode("utf-8", "surrogateescape")))'].join('\n');
    const python = await run('python3', ['-c', script], { input: samples.map((hex) => `x${hex}`).join('\n') });
    expect(python.code, python.stderr).toBe(0);
    const decoded = python.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as string);
    expect(decoded).toHaveLength(samples.length);
    for (const [i, hex] of samples.entries()) expect(decodeName(Buffer.from(hex, 'hex')), hex).toBe(decoded[i]);
  });

  it('escapes each byte that is not UTF-8 as U+DC80..U+DCFF', () => {
    expect(decodeName(Buffer.from('caf\xe9/men\xfa', 'latin1'))).toBe('caf\udce9/men\udcfa');
    expect(decodeName(Buffer.from('caf\xc3\xa9', 'latin1'))).toBe('café');
    // An encoded surrogate is not UTF-8: its three bytes are escaped, not decoded to U+DCE9.
    expect(decodeName(Buffer.from('\xed\xb3\xa9', 'latin1'))).toBe('\udced\udcb3\udca9');
    expect(decodeName(Buffer.from('\xf0\x9f\x98!', 'latin1'))).toBe('\udcf0\udc9f\udc98!');
  });

  it('refuses lone surrogates that stand for no byte, and second spellings of UTF-8', () => {
    expect(() => encodeName('a\ud800b')).toThrow(UnencodableNameError);
    expect(() => encodeName('a\udc41')).toThrow(UnencodableNameError);
    expect(isCanonicalName('a\ud800')).toBe(false);
    expect(isCanonicalName('\udcc3\udca9')).toBe(false); // é's bytes, escaped
    expect(isCanonicalName('caf\udce9')).toBe(true);
    expect(isCanonicalName('😀é')).toBe(true);
  });
});

describe('compareNames', () => {
  it('orders names as Buffer.compare orders their bytes', () => {
    fc.assert(
      fc.property(byteStrings, byteStrings, (a, b) => {
        expect(compareNames(decodeName(a), decodeName(b))).toBe(Buffer.compare(a, b));
      }),
      { numRuns: 5000 },
    );
  });

  it('differs from UTF-16 order where the bytes say so', () => {
    // U+FF5E is EF BD 9E, 😀 is F0 9F 98 80: bytewise U+FF5E first, in UTF-16 code units 😀 (D83D…).
    expect(compareNames('\uff5e', '😀')).toBe(-1);
    expect('\uff5e' < '😀').toBe(false);
    // A lone 0xC3 byte is a prefix of é's bytes (C3 A9): it sorts first, though U+DCC3 > U+00E9.
    expect(compareNames('\udcc3', 'é')).toBe(-1);
    expect(compareNames('x\udcfe', 'x\udcff')).toBe(-1);
    expect(compareNames('a', 'a')).toBe(0);
    expect(compareNames('a', 'a/b')).toBe(-1);
  });
});

describe('printable', () => {
  it('shows the bytes of a name that are not UTF-8 as \\xNN, the rest as text', () => {
    expect(printable(decodeName(Buffer.from('caf\xe9/men\xfa', 'latin1')))).toBe('caf\\xe9/men\\xfa');
    expect(printable('café')).toBe('café');
    expect(printable(decodeName(Buffer.from('x\xff\x1b[31m', 'latin1')))).toBe('x\\xff\\x1b[31m');
  });

  it('shows other invisible characters as code points, so that \\xNN always means a byte', () => {
    expect(printable('a\u0085b\u00adc\ufffd')).toBe('a\\u{85}b\\u{ad}c\\u{fffd}');
    expect(printable('\ud800')).toBe('\\u{d800}');
  });
});
