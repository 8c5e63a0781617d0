/** Longest text an error shows of a path or value from the input. */
const MAX_SHOWN_CHARS = 256;

/** The lone surrogates a name read from a tar holds for its bytes that are not UTF-8 (tar-name.ts). */
const FIRST_ESCAPED_BYTE = 0xdc80;
const LAST_ESCAPED_BYTE = 0xdcff;

/**
 * Text from untrusted input (a path, a PAX value) as an error may show it: control and other
 * invisible characters, lone surrogates and the replacement character escaped, and cut in the
 * middle to at most about 256 characters, so that an error carries neither megabytes nor
 * terminal escapes.
 *
 * A byte of a name that is not UTF-8 (held as U+DC80..U+DCFF, see tar-name.ts) is shown as the
 * byte, `\xe9`; so is an ASCII control character, which is its own byte. Any other character
 * escaped is shown as its code point, `\u{85}`, so that `\xNN` always means one byte of the name.
 */
export function printable(text: string, maxChars = MAX_SHOWN_CHARS): string {
  const tail = Math.floor(maxChars / 4);
  const shown = text.length > maxChars ? `${text.slice(0, maxChars - tail)}…${text.slice(-tail)}` : text;
  return shown.replace(/[\p{C}\uFFFD]/gu, (char) => {
    const code = char.codePointAt(0) ?? 0;
    if (code >= FIRST_ESCAPED_BYTE && code <= LAST_ESCAPED_BYTE) return hexByte(code - 0xdc00);
    return code < 0x80 ? hexByte(code) : `\\u{${code.toString(16)}}`;
  });
}

function hexByte(byte: number): string {
  return `\\x${byte.toString(16).padStart(2, '0')}`;
}
