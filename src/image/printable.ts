/** Longest text an error shows of a path or value from the input. */
const MAX_SHOWN_CHARS = 256;

/**
 * Text from untrusted input (a path, a PAX value) as an error may show it: control and other
 * invisible characters, lone surrogates and the replacement character (bytes that were not
 * UTF-8) escaped, and cut in the middle to at most about 256 characters, so that an error
 * carries neither megabytes nor terminal escapes.
 */
export function printable(text: string, maxChars = MAX_SHOWN_CHARS): string {
  const tail = Math.floor(maxChars / 4);
  const shown = text.length > maxChars ? `${text.slice(0, maxChars - tail)}…${text.slice(-tail)}` : text;
  return shown.replace(/[\p{C}\uFFFD]/gu, (char) => {
    const code = char.codePointAt(0) ?? 0;
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`;
  });
}
