import { REGISTRY_LIMIT_SETTINGS } from './registry-limits.ts';
import { RegistryError } from './registries.ts';

const REDIRECT_STATUSES: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);

export interface FollowOptions {
  /** Throws (RegistryError) unless the request may go on to this URL; called before it is contacted. */
  check: (url: URL) => void;
  maxRedirects: number;
  /** A fetch failure (no answer at all) at `url`, as the caller words it. */
  unreachable: (url: URL, err: unknown) => RegistryError;
  /** The request as errors name it, e.g. `GET blob team/app@sha256:…`. */
  what: string;
}

/**
 * `fetch`, with redirects followed by baler's rules rather than fetch's: every hop is checked
 * before it is contacted, at most `maxRedirects` of them, and `Authorization` goes only to the
 * origin of the first URL (a redirect to blob storage is a pre-signed URL that needs none, and
 * a registry must not be able to move its credentials to another host). Only GET and HEAD are
 * followed; any other request gets its 3xx back (its body cannot be sent again).
 * Returns the last answer and the URL that gave it.
 */
export async function fetchFollowing(
  fetchFn: typeof fetch,
  url: URL,
  init: RequestInit & { method: string; headers: Record<string, string> },
  opts: FollowOptions,
): Promise<{ res: Response; url: URL }> {
  const follow = init.method === 'GET' || init.method === 'HEAD';
  const origin = url.origin;
  let headers = init.headers;
  for (let hops = 0; ; hops++) {
    let res: Response;
    try {
      res = await fetchFn(url, { ...init, headers, redirect: 'manual' });
    } catch (err) {
      throw opts.unreachable(url, err);
    }
    const location = res.headers.get('location');
    if (!follow || !REDIRECT_STATUSES.has(res.status) || location === null) return { res, url };
    await res.body?.cancel();
    if (hops >= opts.maxRedirects) {
      throw new RegistryError(`${opts.what}: more than ${opts.maxRedirects} redirects (${REGISTRY_LIMIT_SETTINGS.maxRedirects})`, 'invalid');
    }
    let next: URL;
    try {
      next = new URL(location, url);
    } catch (err) {
      throw new RegistryError(`${opts.what}: redirected to a Location that is not a URL`, 'invalid', { cause: err });
    }
    opts.check(next);
    if (next.origin !== origin && headers.authorization !== undefined) {
      const { authorization: _dropped, ...rest } = headers;
      headers = rest;
    }
    url = next;
  }
}
