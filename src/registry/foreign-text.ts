/**
 * Text a registry chose, as it may appear in an error a tenant or operator reads. A
 * compromised registry must not be able to write words, escape sequences or control characters
 * into a build error, so:
 *  - a name (a media type, a platform's os/architecture, a challenge scheme) is shown only if
 *    it looks like one (letters, digits, `.` `_` `+` `-` `/`, short), else as `?`;
 *  - other text (a host, a network error) only as printable ASCII, capped.
 */

const NAME = /^[A-Za-z0-9][A-Za-z0-9._+/-]*$/;

/** `value` if it is a short name-like string, else `?`. */
export function foreignName(value: unknown, maxChars = 64): string {
  return typeof value === 'string' && value.length <= maxChars && NAME.test(value) ? value : '?';
}

/** `value` as printable ASCII (anything else becomes `?`), at most `maxChars`. */
export function foreignText(value: unknown, maxChars = 64): string {
  const text = String(value).slice(0, maxChars + 1);
  const clean = text.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > maxChars ? `${clean.slice(0, maxChars - 1)}…` : clean;
}
