/**
 * What the tar readers (the index, the sparse-map reader) share: the error for input that is
 * not a valid tar, and the numeric fields of a header block.
 */

export class TarFormatError extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(`${message} (at byte ${offset})`);
    this.name = 'TarFormatError';
  }
}

/** Octal text, or GNU base-256 when the high bit of the first byte is set. */
export function readNumber(block: Buffer, start: number, length: number, offset: number, message = 'invalid number in tar header'): number {
  const field = block.subarray(start, start + length);
  if (((field[0] ?? 0) & 0x80) !== 0) {
    if ((field[0] ?? 0) & 0x40) throw new TarFormatError('negative number in tar header', offset);
    let value = (field[0] ?? 0) & 0x3f;
    for (let i = 1; i < field.length; i++) value = value * 256 + (field[i] ?? 0);
    if (!Number.isSafeInteger(value)) throw new TarFormatError('number in tar header too large', offset);
    return value;
  }
  const text = field.toString('latin1').replace(/\0.*$/s, '').trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw new TarFormatError(message, offset);
  return parseInt(text, 8);
}
