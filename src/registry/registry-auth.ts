import { errorReason } from './error-reason.ts';
import { fetchFollowing } from './follow-redirects.ts';
import { foreignName } from './foreign-text.ts';
import type { Challenge } from './auth-challenge.ts';
import { RegistryError, type RegistryConfig } from './registries.ts';
import type { RegistryHosts } from './registry-hosts.ts';
import { readCapped } from './bounded-body.ts';
import { REGISTRY_LIMIT_SETTINGS, type RegistryLimits } from './registry-limits.ts';

export type FetchLike = typeof fetch;

/** What a token service may answer as a token: an HTTP header's visible characters (RFC 6750). */
const TOKEN_RE = /^[\x21-\x7e]+$/;

/**
 * The credentials of one registry's requests: Basic, or Bearer tokens from the challenge's realm
 * (the configured credentials sent there), cached per scope. Learnt from the registry's 401
 * challenges (see RegistryTransport.request).
 */
export class RegistryAuth {
  private basic = false;
  private readonly tokens = new Map<string, string>();

  constructor(
    private readonly host: string,
    private readonly config: RegistryConfig,
    private readonly hosts: RegistryHosts,
    private readonly limits: RegistryLimits,
    private readonly fetch: FetchLike,
    /** The error for no answer at all from a URL (see RegistryTransport). */
    private readonly unreachable: (url: URL, err: unknown) => RegistryError,
  ) {}

  /** The Authorization header known for `scope`, if any. */
  header(scope: string): string | undefined {
    const token = this.tokens.get(scope);
    if (token) return `Bearer ${token}`;
    if (this.basic) return this.basicHeader();
    return undefined;
  }

  /**
   * Learn what answers the registry's 401 `challenge` to a request of `scope` (sent with
   * `hadAuth` or not): Basic credentials, or a Bearer token fetched from the realm. A
   * 'auth' RegistryError when nothing can.
   */
  async answer(challenge: Challenge | null, scope: string, hadAuth: boolean): Promise<void> {
    if (hadAuth || !challenge) throw this.error(challenge, hadAuth);
    if (challenge.scheme === 'basic') {
      if (!this.hasCredentials()) throw this.error(challenge, false);
      this.basic = true;
    } else if (challenge.scheme === 'bearer') {
      this.tokens.set(scope, await this.token(challenge, scope));
    } else {
      throw new RegistryError(`registry ${this.host} asks for unsupported authentication '${foreignName(challenge.scheme, 32)}'`, 'auth');
    }
  }

  /** The 'auth' RegistryError for a refusal: no credentials configured, or these rejected. */
  error(challenge: Challenge | null, rejected: boolean): RegistryError {
    if (!this.hasCredentials()) {
      return new RegistryError(`registry ${this.host} requires authentication, and no credentials are configured for it in the registries file`, 'auth', { status: 401 });
    }
    return new RegistryError(
      rejected ? `registry ${this.host} rejected the configured credentials (user '${this.config.username}')` : `registry ${this.host} refused the request (${challenge?.scheme ?? 'no'} challenge)`,
      'auth',
      { status: 401 },
    );
  }

  private basicHeader(): string {
    return `Basic ${Buffer.from(`${this.config.username}:${this.config.password}`).toString('base64')}`;
  }

  private hasCredentials(): boolean {
    return this.config.username !== undefined && this.config.password !== undefined;
  }

  /**
   * The Bearer token flow: GET realm?service=…&scope=… with Basic credentials if configured.
   * The realm is the registry's word, so it is asked only when RegistryHosts allows it (the
   * registry's own host, or one the operator listed in `tokenRealmHosts`).
   */
  private async token(challenge: Challenge, scope: string): Promise<string> {
    const realm = challenge.params.realm;
    if (!realm) throw new RegistryError(`registry ${this.host} sent a Bearer challenge without a realm`, 'auth');
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new RegistryError(`registry ${this.host} sent a token realm that is not a URL`, 'auth');
    }
    this.hosts.checkRealm(url);
    if (challenge.params.service) url.searchParams.set('service', challenge.params.service);
    const scopes = new Set(scope.split(' ').filter(Boolean));
    for (const s of (challenge.params.scope ?? '').split(' ').filter(Boolean)) scopes.add(s);
    for (const s of scopes) url.searchParams.append('scope', s);
    const headers: Record<string, string> = {};
    if (this.hasCredentials()) headers.authorization = this.basicHeader();
    const { res } = await fetchFollowing(
      this.fetch,
      url,
      { method: 'GET', headers },
      {
        check: (next) => this.hosts.checkRealm(next),
        maxRedirects: this.limits.maxRedirects,
        unreachable: (at, err) => this.unreachable(at, err),
        what: `the token service of ${this.host}`,
      },
    );
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel();
      throw this.error(challenge, true);
    }
    if (!res.ok) throw new RegistryError(`the token service of ${this.host} answered ${await errorReason(res)}`, 'auth', { status: res.status });
    const max = this.limits.maxTokenBytes;
    const bytes = await readCapped(res, max, () => new RegistryError(`the token service of ${this.host} answered more than ${max} bytes (${REGISTRY_LIMIT_SETTINGS.maxTokenBytes})`, 'invalid'));
    let body: { token?: unknown; access_token?: unknown } = {};
    try {
      body = (JSON.parse(bytes.toString('utf8')) as typeof body | null) ?? {};
    } catch {
      // not JSON: no token
    }
    const token = typeof body.token === 'string' ? body.token : typeof body.access_token === 'string' ? body.access_token : undefined;
    if (!token) throw new RegistryError(`the token service of ${this.host} returned no token`, 'auth');
    if (!TOKEN_RE.test(token)) throw new RegistryError(`the token service of ${this.host} returned a token that cannot be sent in a header`, 'invalid');
    return token;
  }
}
