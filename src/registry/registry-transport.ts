import { Readable } from 'node:stream';
import { BudgetExceededError } from '../budget.ts';
import { parseChallenge } from './auth-challenge.ts';
import { errorReason } from './error-reason.ts';
import { fetchFollowing } from './follow-redirects.ts';
import { foreignText } from './foreign-text.ts';
import { RegistryError, type RegistryConfig } from './registries.ts';
import { RegistryAuth, type FetchLike } from './registry-auth.ts';
import { RegistryHosts } from './registry-hosts.ts';
import { DEFAULT_REGISTRY_LIMITS, REGISTRY_LIMIT_SETTINGS, type RegistryLimits } from './registry-limits.ts';

export type { FetchLike };

export interface ClientOptions {
  /** Replaces global fetch (tests count requests with it). */
  fetch?: FetchLike;
}

export interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  /** A body that can be sent again (for the retry after an auth challenge). */
  body?: Buffer | string;
  /** A streamed body: sent once; auth must already be settled for the scope. */
  stream?: () => Promise<Readable>;
  /** `repository:<name>:pull[,push]` (and more, space separated). */
  scope: string;
  /** Absolute URL (an upload Location, already checked) instead of a path under the registry. */
  url?: string;
  /** The request as errors name it, e.g. `GET manifest team/app:1`. */
  what: string;
}

/**
 * Requests to one registry of the allow-list, authenticated (RegistryAuth) and with redirects
 * followed only where RegistryHosts allows; the registry's errors told by status and error code
 * only (errorReason). The API calls themselves are RegistryClient's.
 */
export class RegistryTransport {
  private readonly fetch: FetchLike;
  protected readonly hosts: RegistryHosts;
  protected readonly limits: RegistryLimits;
  private readonly auth: RegistryAuth;

  constructor(
    readonly host: string,
    readonly config: RegistryConfig,
    opts: ClientOptions = {},
  ) {
    this.fetch = opts.fetch ?? ((input, init) => fetch(input, init));
    this.hosts = new RegistryHosts(host, config);
    this.limits = config.limits ?? DEFAULT_REGISTRY_LIMITS;
    this.auth = new RegistryAuth(host, config, this.hosts, this.limits, this.fetch, (url, err) => this.unreachable(url, err));
  }

  /** No answer at all from `url` (the registry, its token service or its blob storage). */
  private unreachable(url: URL, err: unknown): RegistryError {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const why = foreignText(cause?.code ?? cause?.message ?? (err as Error).message, 120);
    const where = url.origin === this.hosts.origin ? `registry ${this.host} (${this.hosts.origin})` : `'${foreignText(url.origin, 100)}' for registry ${this.host}`;
    return new RegistryError(`cannot reach ${where}: ${why}`, 'unreachable', { cause: err });
  }

  /** One request, redirects followed by RegistryHosts' rules; the answer and the URL that gave it. */
  private async send(url: URL, opts: RequestOptions): Promise<{ res: Response; url: URL }> {
    const headers: Record<string, string> = { ...opts.headers };
    const auth = this.auth.header(opts.scope);
    if (auth) headers.authorization = auth;
    const init: RequestInit & { method: string; headers: Record<string, string>; duplex?: 'half' } = { method: opts.method ?? 'GET', headers };
    if (opts.body !== undefined)
      init.body = typeof opts.body === 'string' ? opts.body : (new Uint8Array(opts.body.buffer, opts.body.byteOffset, opts.body.byteLength) as unknown as RequestInit['body']);
    else if (opts.stream) {
      init.body = Readable.toWeb(await opts.stream()) as unknown as ReadableStream;
      init.duplex = 'half';
    }
    return fetchFollowing(this.fetch, url, init, {
      check: (next) => this.hosts.checkRedirect(next, opts.what),
      maxRedirects: this.limits.maxRedirects,
      unreachable: (at, err) => this.unreachable(at, err),
      what: `registry ${this.host}: ${opts.what}`,
    });
  }

  /**
   * One request, authenticated: sent with what auth is known for its scope; on 401 the
   * challenge is answered (Basic credentials, or a Bearer token fetched from the realm) and a
   * replayable request is sent again. A 401 after that is a clear 'auth' RegistryError. A 401
   * from a host the registry redirected to is returned as it is: only the registry's own
   * challenges are answered.
   */
  async request(path: string, opts: RequestOptions): Promise<Response> {
    const url = new URL(opts.url ?? `${this.hosts.origin}${path}`);
    const first = await this.send(url, opts);
    if (first.res.status !== 401 || first.url.origin !== this.hosts.origin) return first.res;
    const challenge = parseChallenge(first.res.headers.get('www-authenticate') ?? '');
    await first.res.body?.cancel();
    await this.auth.answer(challenge, opts.scope, this.auth.header(opts.scope) !== undefined);
    if (opts.stream) {
      // A streamed body was consumed; callers settle auth with a bodiless request first.
      throw new RegistryError(`registry ${this.host} asked for authentication in the middle of an upload`, 'auth');
    }
    const { res } = await this.send(url, opts);
    if (res.status === 401) {
      await res.body?.cancel();
      throw this.auth.error(challenge, true);
    }
    return res;
  }

  /** An answer the call did not expect, as a RegistryError of the kind its status says. */
  protected async unexpected(res: Response, what: string): Promise<RegistryError> {
    const kind = res.status === 404 ? 'not-found' : res.status === 401 || res.status === 403 ? 'auth' : 'protocol';
    return new RegistryError(`${what}: registry ${this.host} answered ${await errorReason(res)}`, kind, { status: res.status });
  }

  /** Over BALER_REGISTRY_MAX_DOCUMENT_BYTES: a manifest, index or config too big to read whole. */
  protected documentTooLarge(what: string): BudgetExceededError {
    return new BudgetExceededError(REGISTRY_LIMIT_SETTINGS.maxDocumentBytes, this.limits.maxDocumentBytes, `${what} from ${this.host} is more than ${this.limits.maxDocumentBytes} bytes`);
  }
}
