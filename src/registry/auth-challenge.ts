/** A `WWW-Authenticate` challenge (RFC 9110 §11.6.1): its scheme and parameters. */
export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** A challenge longer than this is not one a registry needs to send. */
const MAX_CHALLENGE_CHARS = 4096;

/** `Bearer realm="…",service="…",scope="…"` → its scheme and parameters. */
export function parseChallenge(header: string): Challenge | null {
  if (header.length > MAX_CHALLENGE_CHARS) return null;
  const m = /^\s*([A-Za-z]{1,32})(?:\s+(.*))?$/s.exec(header);
  if (!m) return null;
  const params: Record<string, string> = {};
  const rest = m[2] ?? '';
  // Sticky: each parameter must follow the last, so a malformed header stops the scan at once.
  const re = /\s*([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?/y;
  let p: RegExpExecArray | null;
  while (re.lastIndex < rest.length && (p = re.exec(rest)) !== null && p[0].length > 0) {
    params[(p[1] as string).toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : (p[3] as string);
  }
  return { scheme: (m[1] as string).toLowerCase(), params };
}
