import { foreignText } from './foreign-text.ts';
import { REGISTRIES_FILE_ENV, RegistryError, type RegistryConfig } from './registries.ts';

/**
 * Whom the client of one allowed registry may contact, and whom it may give the registry's
 * credentials. A registry on the allow-list can still be compromised, so what it says (a
 * redirect, a token realm, an upload Location) never widens this:
 *  - the registry itself (`https://host:port`, or `http://` when marked insecure) gets the
 *    credentials and the tokens;
 *  - a token service on another host is contacted, with the Basic credentials, only if the
 *    operator listed it in the registry's `tokenRealmHosts`;
 *  - a redirect may go to the registry's own host or to one of its `redirectHosts` (blob
 *    storage), and never carries `Authorization` to another origin (see fetchFollowing);
 *  - an upload goes to the registry's own origin only.
 * Plain http is allowed only for a registry marked insecure. Anything else: RegistryError
 * 'not-allowed', before the host is contacted.
 */
export class RegistryHosts {
  /** `https://host:port` (or `http://` when insecure): where requests go and credentials may be sent. */
  readonly origin: string;

  constructor(
    readonly host: string,
    private readonly config: RegistryConfig,
  ) {
    this.origin = new URL(`${config.insecure ? 'http' : 'https'}://${host}`).origin;
  }

  /** A request of this registry may be redirected to `url` (throws otherwise). */
  checkRedirect(url: URL, what: string): void {
    this.checkScheme(url, `${what} was redirected to`);
    if (isHost(this.host, url) || (this.config.redirectHosts ?? []).some((h) => isHost(h, url))) return;
    throw this.notAllowed(`${what} was redirected to ${describe(url)}, a host not allowed for it (the operator may list it in the registry's 'redirectHosts' in ${REGISTRIES_FILE_ENV})`);
  }

  /** The Bearer challenge's `realm` may be asked for a token, with the credentials (throws otherwise). */
  checkRealm(url: URL): void {
    this.checkScheme(url, 'its token realm is');
    if (isHost(this.host, url) || (this.config.tokenRealmHosts ?? []).some((h) => isHost(h, url))) return;
    throw this.notAllowed(
      `its token realm is on ${describe(url)}, a host not allowed to receive its credentials (the operator may list it in the registry's 'tokenRealmHosts' in ${REGISTRIES_FILE_ENV})`,
    );
  }

  /** An upload session's Location (throws unless it is on the registry's own origin). */
  checkUploadLocation(url: URL): void {
    if (url.origin === this.origin) return;
    throw this.notAllowed(`its upload Location is ${describe(url)}, not on ${this.origin}: uploads go to the registry itself only`);
  }

  private checkScheme(url: URL, what: string): void {
    if (url.protocol === 'https:' || (url.protocol === 'http:' && this.config.insecure)) return;
    throw this.notAllowed(`${what} ${describe(url)}: only https is allowed (plain http only for a registry marked insecure)`);
  }

  private notAllowed(why: string): RegistryError {
    return new RegistryError(`registry ${this.host}: ${why}`, 'not-allowed');
  }
}

/** Whether `url` is on `hostPort` (`host` or `host:port`; no port: the scheme's default). */
function isHost(hostPort: string, url: URL): boolean {
  try {
    return new URL(`${url.protocol}//${hostPort}`).host === url.host;
  } catch {
    return false;
  }
}

/** A registry-chosen URL as an error may name it: its scheme and host, nothing of its path. */
function describe(url: URL): string {
  return `'${foreignText(`${url.protocol}//${url.host}`, 100)}'`;
}
