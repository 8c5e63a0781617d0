import { STATUS_CODES } from 'node:http';
import { readHead } from './bounded-body.ts';

/** How much of an error body is read to find its error codes; the rest is never read. */
export const ERROR_BODY_READ_BYTES = 64 * 1024;
/** How long an error body may take to arrive. */
export const ERROR_BODY_READ_MS = 5_000;
/** Codes quoted from one error body. */
const MAX_CODES = 3;

/**
 * An error code: the distribution spec's (`MANIFEST_UNKNOWN`, `DENIED`, `TOOMANYREQUESTS`, …)
 * and those registries add (Harbor's `FORBIDDEN`) have this shape; prose and markup do not.
 */
const CODE = /^[A-Z][A-Z0-9_]{0,31}$/;

/**
 * Why a registry refused, as baler words it: the HTTP status with its standard phrase, and the
 * `errors[].code`s of a distribution-spec error body (`404 Not Found (MANIFEST_UNKNOWN)`).
 * Nothing else of the body (messages, details, HTML) reaches an error: a compromised registry
 * must not put words or escape sequences into a tenant's build error. Reads at most
 * ERROR_BODY_READ_BYTES, for at most ERROR_BODY_READ_MS.
 */
export async function errorReason(res: Response): Promise<string> {
  const status = `${res.status}${STATUS_CODES[res.status] ? ` ${STATUS_CODES[res.status]}` : ''}`;
  const codes = errorCodes(await readHead(res, ERROR_BODY_READ_BYTES, ERROR_BODY_READ_MS));
  return codes.length ? `${status} (${codes.join(', ')})` : status;
}

/** The distinct, code-shaped `errors[].code`s of an error body (none if it is not such JSON). */
export function errorCodes(body: Buffer): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return [];
  }
  const errors = (parsed as { errors?: unknown } | null)?.errors;
  if (!Array.isArray(errors)) return [];
  const codes = new Set<string>();
  for (const e of errors.slice(0, 100)) {
    const code = (e as { code?: unknown } | null)?.code;
    if (typeof code === 'string' && CODE.test(code)) codes.add(code);
    if (codes.size === MAX_CODES) break;
  }
  return [...codes];
}
