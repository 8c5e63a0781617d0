import { createHash } from 'node:crypto';
import { Readable, Transform } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { BudgetExceededError } from '../budget.ts';
import { digestFromHash, digestOf, isDigest, type Digest } from '../digest.ts';
import { pipeThrough } from '../streams.ts';
import { readCapped } from './bounded-body.ts';
import { errorReason } from './error-reason.ts';
import { fetchFollowing } from './follow-redirects.ts';
import { foreignName, foreignText } from './foreign-text.ts';
import { RegistryError, registryFor, type ImageReference, type Registries, type RegistryConfig } from './registries.ts';
import { RegistryHosts } from './registry-hosts.ts';
import { DEFAULT_REGISTRY_LIMITS, REGISTRY_LIMIT_SETTINGS, type RegistryLimits } from './registry-limits.ts';

export const MEDIA_TYPES = {
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
} as const;

export const MANIFEST_ACCEPT = [MEDIA_TYPES.ociIndex, MEDIA_TYPES.dockerList, MEDIA_TYPES.ociManifest, MEDIA_TYPES.dockerManifest];
const INDEX_TYPES: readonly string[] = [MEDIA_TYPES.ociIndex, MEDIA_TYPES.dockerList];
const IMAGE_MANIFEST_TYPES: readonly string[] = [MEDIA_TYPES.ociManifest, MEDIA_TYPES.dockerManifest];

export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  platform?: { architecture?: string; os?: string; variant?: string };
  urls?: string[];
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
}

export interface IndexManifest {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
}

export interface FetchedManifest {
  /** sha256 of the bytes as received (verified against a pinned digest). */
  digest: Digest;
  mediaType: string;
  bytes: Buffer;
  /** The parsed body: an image manifest or an index / manifest list, per `kind`. */
  kind: 'image' | 'index';
  image?: ImageManifest;
  index?: IndexManifest;
}

export type FetchLike = typeof fetch;

export interface ClientOptions {
  /** Replaces global fetch (tests count requests with it). */
  fetch?: FetchLike;
}

interface Challenge {
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

/** What a token service may answer as a token: an HTTP header's visible characters (RFC 6750). */
const TOKEN_RE = /^[\x21-\x7e]+$/;

/** Hash a stream as it passes; `digest()` once it ended. */
export function hashingTap(): { tap: Transform; digest: () => Digest; size: () => number } {
  const hash = createHash('sha256');
  let size = 0;
  let result: Digest | undefined;
  const tap = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      size += chunk.length;
      done(null, chunk);
    },
  });
  return {
    tap,
    digest: () => (result ??= digestFromHash(hash)),
    size: () => size,
  };
}

interface RequestOptions {
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
 * A small Docker Registry HTTP API v2 / OCI distribution client for one registry of the
 * allow-list. Auth: Basic, and the Bearer token flow (the challenge's realm, service and scope,
 * the configured credentials sent to the realm), tokens cached per scope. Everything large is
 * streamed; manifests and configs are read whole but capped. The registry is not trusted
 * beyond its content (verified by digest): whom else it may make baler contact and what may
 * carry its credentials is RegistryHosts' rule, what it may send is bounded by RegistryLimits,
 * and its refusals are reported by status and error code only (errorReason).
 */
export class RegistryClient {
  private readonly fetch: FetchLike;
  private readonly hosts: RegistryHosts;
  private readonly limits: RegistryLimits;
  private basic = false;
  private readonly tokens = new Map<string, string>();

  constructor(
    readonly host: string,
    readonly config: RegistryConfig,
    opts: ClientOptions = {},
  ) {
    this.fetch = opts.fetch ?? ((input, init) => fetch(input, init));
    this.hosts = new RegistryHosts(host, config);
    this.limits = config.limits ?? DEFAULT_REGISTRY_LIMITS;
  }

  /** The client for the ref's registry, if the operator allows it (RegistryError otherwise). */
  static forReference(ref: ImageReference, registries: Registries, opts?: ClientOptions): RegistryClient {
    return new RegistryClient(ref.host, registryFor(registries, ref.host), opts);
  }

  private basicHeader(): string {
    return `Basic ${Buffer.from(`${this.config.username}:${this.config.password}`).toString('base64')}`;
  }

  private authHeader(scope: string): string | undefined {
    const token = this.tokens.get(scope);
    if (token) return `Bearer ${token}`;
    if (this.basic) return this.basicHeader();
    return undefined;
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
    const auth = this.authHeader(opts.scope);
    if (auth) headers.authorization = auth;
    const init: RequestInit & { method: string; headers: Record<string, string>; duplex?: 'half' } = { method: opts.method ?? 'GET', headers };
    if (opts.body !== undefined) init.body = typeof opts.body === 'string' ? opts.body : (new Uint8Array(opts.body.buffer, opts.body.byteOffset, opts.body.byteLength) as unknown as RequestInit['body']);
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
    const hadAuth = this.authHeader(opts.scope) !== undefined;
    if (hadAuth || !challenge) throw this.authError(challenge, hadAuth);
    if (challenge.scheme === 'basic') {
      if (!this.hasCredentials()) throw this.authError(challenge, false);
      this.basic = true;
    } else if (challenge.scheme === 'bearer') {
      this.tokens.set(opts.scope, await this.token(challenge, opts.scope));
    } else {
      throw new RegistryError(`registry ${this.host} asks for unsupported authentication '${foreignName(challenge.scheme, 32)}'`, 'auth');
    }
    if (opts.stream) {
      // A streamed body was consumed; callers settle auth with a bodiless request first.
      throw new RegistryError(`registry ${this.host} asked for authentication in the middle of an upload`, 'auth');
    }
    const { res } = await this.send(url, opts);
    if (res.status === 401) {
      await res.body?.cancel();
      throw this.authError(challenge, true);
    }
    return res;
  }

  private hasCredentials(): boolean {
    return this.config.username !== undefined && this.config.password !== undefined;
  }

  private authError(challenge: Challenge | null, rejected: boolean): RegistryError {
    if (!this.hasCredentials()) {
      return new RegistryError(
        `registry ${this.host} requires authentication, and no credentials are configured for it in the registries file`,
        'auth',
        { status: 401 },
      );
    }
    return new RegistryError(
      rejected
        ? `registry ${this.host} rejected the configured credentials (user '${this.config.username}')`
        : `registry ${this.host} refused the request (${challenge?.scheme ?? 'no'} challenge)`,
      'auth',
      { status: 401 },
    );
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
    const { res } = await fetchFollowing(this.fetch, url, { method: 'GET', headers }, {
      check: (next) => this.hosts.checkRealm(next),
      maxRedirects: this.limits.maxRedirects,
      unreachable: (at, err) => this.unreachable(at, err),
      what: `the token service of ${this.host}`,
    });
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel();
      throw this.authError(challenge, true);
    }
    if (!res.ok) throw new RegistryError(`the token service of ${this.host} answered ${await errorReason(res)}`, 'auth', { status: res.status });
    const max = this.limits.maxTokenBytes;
    const bytes = await readCapped(
      res,
      max,
      () => new RegistryError(`the token service of ${this.host} answered more than ${max} bytes (${REGISTRY_LIMIT_SETTINGS.maxTokenBytes})`, 'invalid'),
    );
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

  private async unexpected(res: Response, what: string): Promise<RegistryError> {
    const kind = res.status === 404 ? 'not-found' : res.status === 401 || res.status === 403 ? 'auth' : 'protocol';
    return new RegistryError(`${what}: registry ${this.host} answered ${await errorReason(res)}`, kind, { status: res.status });
  }

  /** `GET /v2/`: the registry speaks API v2 and the credentials (if it wants any) work. */
  async ping(): Promise<void> {
    const res = await this.request('/v2/', { scope: '', what: 'ping /v2/' });
    if (!res.ok) throw await this.unexpected(res, 'ping /v2/');
    await res.body?.cancel();
  }

  /** Over BALER_REGISTRY_MAX_DOCUMENT_BYTES: a manifest, index or config too big to read whole. */
  private documentTooLarge(what: string): BudgetExceededError {
    return new BudgetExceededError(
      REGISTRY_LIMIT_SETTINGS.maxDocumentBytes,
      this.limits.maxDocumentBytes,
      `${what} from ${this.host} is more than ${this.limits.maxDocumentBytes} bytes`,
    );
  }

  /**
   * A manifest by tag or digest, any of the Docker v2 / OCI manifest and list/index types.
   * Verified against `reference` when that is a digest; else against `Docker-Content-Digest`
   * when the registry sends one.
   */
  async getManifest(repository: string, reference: string): Promise<FetchedManifest> {
    const what = `manifest ${repository}${isDigest(reference) ? '@' : ':'}${reference}`;
    const res = await this.request(`/v2/${repository}/manifests/${reference}`, {
      scope: pullScope(repository),
      headers: { accept: MANIFEST_ACCEPT.join(', ') },
      what: `GET ${what}`,
    });
    if (res.status === 404) {
      await res.body?.cancel();
      throw new RegistryError(`manifest ${this.host}/${repository}${isDigest(reference) ? '@' : ':'}${reference} not found`, 'not-found', { status: 404 });
    }
    if (!res.ok) throw await this.unexpected(res, `GET ${what}`);
    const bytes = await readCapped(res, this.limits.maxDocumentBytes, () => this.documentTooLarge(what));
    const digest = digestOf(bytes);
    if (isDigest(reference) && digest !== reference) {
      throw new RegistryError(`manifest ${repository}@${reference} from ${this.host} hashes to ${digest}`, 'invalid');
    }
    const claimed = res.headers.get('docker-content-digest');
    if (claimed && isDigest(claimed) && claimed !== digest) {
      throw new RegistryError(`manifest ${repository}:${reference} from ${this.host} hashes to ${digest}, not the ${claimed} the registry claims`, 'invalid');
    }
    return parseManifest(bytes, digest, res.headers.get('content-type'), `${this.host}/${repository}:${reference}`, this.limits.maxIndexManifests);
  }

  /** `PUT` a manifest under a tag (or its digest); returns the digest the registry reports (checked). */
  async putManifest(repository: string, reference: string, bytes: Buffer, mediaType: string): Promise<Digest> {
    const what = `PUT manifest ${repository}:${reference}`;
    const res = await this.request(`/v2/${repository}/manifests/${reference}`, {
      method: 'PUT',
      scope: pushScope(repository),
      headers: { 'content-type': mediaType },
      body: bytes,
      what,
    });
    if (res.status !== 201 && res.status !== 200) throw await this.unexpected(res, what);
    await res.body?.cancel();
    const digest = digestOf(bytes);
    const claimed = res.headers.get('docker-content-digest');
    if (claimed && claimed !== digest) {
      throw new RegistryError(`registry ${this.host} stored the manifest as ${isDigest(claimed) ? claimed : 'something else'}, expected ${digest}`, 'invalid');
    }
    return digest;
  }

  /** `HEAD` a blob: its size if the repository has it, else null. */
  async hasBlob(repository: string, digest: Digest, scope = pullScope(repository)): Promise<number | null> {
    const what = `HEAD blob ${repository}@${digest}`;
    const res = await this.request(`/v2/${repository}/blobs/${digest}`, { method: 'HEAD', scope, what });
    if (res.status !== 404 && !res.ok) throw await this.unexpected(res, what);
    await res.body?.cancel();
    if (res.status === 404) return null;
    return Number(res.headers.get('content-length') ?? -1);
  }

  /**
   * A blob, streamed. The stream fails (RegistryError 'invalid') at its end if the content does
   * not hash to `digest` or is not `size` bytes, so a consumer never takes a bad blob as good.
   */
  async getBlob(repository: string, digest: Digest, size?: number): Promise<Readable> {
    const res = await this.request(`/v2/${repository}/blobs/${digest}`, { scope: pullScope(repository), what: `GET blob ${repository}@${digest}` });
    if (res.status === 404) {
      await res.body?.cancel();
      throw new RegistryError(`blob ${digest} not found in ${this.host}/${repository}`, 'not-found', { status: 404 });
    }
    if (!res.ok || !res.body) throw await this.unexpected(res, `GET blob ${repository}@${digest}`);
    const hash = createHash('sha256');
    let seen = 0;
    const host = this.host;
    const verify = new Transform({
      transform(chunk: Buffer, _enc, done) {
        hash.update(chunk);
        seen += chunk.length;
        if (size !== undefined && seen > size) done(new RegistryError(`blob ${digest} from ${host} is larger than the ${size} bytes its manifest says`, 'invalid'));
        else done(null, chunk);
      },
      flush(done) {
        const actual = digestFromHash(hash);
        if (actual !== digest) done(new RegistryError(`blob from ${host} does not match its digest ${digest}: it hashes to ${actual}`, 'invalid'));
        else if (size !== undefined && seen !== size) done(new RegistryError(`blob ${digest} from ${host} is ${seen} bytes, not the ${size} its manifest says`, 'invalid'));
        else done();
      },
    });
    return pipeThrough(Readable.fromWeb(res.body as unknown as WebReadableStream<Uint8Array>), verify);
  }

  /** A small blob (a config), read whole (at most BALER_REGISTRY_MAX_DOCUMENT_BYTES) and verified. */
  async getBlobBytes(repository: string, digest: Digest, size?: number): Promise<Buffer> {
    const what = `blob ${repository}@${digest}`;
    if (size !== undefined && size > this.limits.maxDocumentBytes) throw this.documentTooLarge(what);
    const blob = await this.getBlob(repository, digest, size);
    const chunks: Buffer[] = [];
    let total = 0;
    try {
      for await (const chunk of blob as AsyncIterable<Buffer>) {
        total += chunk.length;
        if (total > this.limits.maxDocumentBytes) throw this.documentTooLarge(what);
        chunks.push(chunk);
      }
    } finally {
      blob.destroy();
    }
    return Buffer.concat(chunks);
  }

  /**
   * Try to mount `digest` from `from` (same registry) into `repository`. true if mounted; else
   * the upload session the registry opened instead (a Location), or null if none.
   */
  async mountBlob(repository: string, digest: Digest, from: string): Promise<{ mounted: true } | { mounted: false; location: string | null }> {
    const params = new URLSearchParams({ mount: digest, from });
    const res = await this.request(`/v2/${repository}/blobs/uploads/?${params}`, {
      method: 'POST',
      scope: `${pushScope(repository)} ${pullScope(from)}`,
      headers: { 'content-length': '0' },
      what: `mount ${digest} from ${from} into ${repository}`,
    });
    if (res.status === 201 || res.status === 202) await res.body?.cancel();
    if (res.status === 201) return { mounted: true };
    if (res.status === 202) return { mounted: false, location: this.uploadLocation(res) };
    if (res.status === 401 || res.status === 403 || res.status === 404) {
      await res.body?.cancel();
      return { mounted: false, location: null };
    }
    throw await this.unexpected(res, `mount ${digest} from ${from} into ${repository}`);
  }

  /** `POST /v2/<name>/blobs/uploads/`: a new upload session's Location. */
  async startUpload(repository: string): Promise<string> {
    const res = await this.request(`/v2/${repository}/blobs/uploads/`, {
      method: 'POST',
      scope: pushScope(repository),
      headers: { 'content-length': '0' },
      what: `start upload to ${repository}`,
    });
    if (res.status !== 202) throw await this.unexpected(res, `start upload to ${repository}`);
    await res.body?.cancel();
    const location = this.uploadLocation(res);
    if (!location) throw new RegistryError(`registry ${this.host} opened an upload without a Location`, 'protocol');
    return location;
  }

  /**
   * Upload a blob of known digest and size into an open session. At most `chunkSize` bytes:
   * one `PUT ?digest=` with the body (monolithic); else `PATCH` chunks (each a fresh stream of
   * `open(start, end)`, so nothing is held) and a bodiless `PUT ?digest=`.
   */
  async uploadBlob(
    repository: string,
    location: string,
    blob: { digest: Digest; size: number },
    open: (start: number, end: number) => Promise<Readable>,
    chunkSize: number,
  ): Promise<void> {
    const scope = pushScope(repository);
    if (blob.size <= chunkSize) {
      const res = await this.request('', {
        url: withDigest(location, blob.digest),
        method: 'PUT',
        scope,
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(blob.size) },
        stream: () => (blob.size === 0 ? Promise.resolve(Readable.from([])) : open(0, blob.size - 1)),
        what: `upload blob ${blob.digest} to ${repository}`,
      });
      if (res.status !== 201) throw await this.unexpected(res, `upload blob ${blob.digest} to ${repository}`);
      await res.body?.cancel();
      return;
    }
    for (let start = 0; start < blob.size; start += chunkSize) {
      const end = Math.min(blob.size, start + chunkSize) - 1;
      const res = await this.request('', {
        url: location,
        method: 'PATCH',
        scope,
        headers: {
          'content-type': 'application/octet-stream',
          'content-range': `${start}-${end}`,
          'content-length': String(end - start + 1),
        },
        stream: () => open(start, end),
        what: `upload chunk ${start}-${end} of ${blob.digest} to ${repository}`,
      });
      if (res.status !== 202) throw await this.unexpected(res, `upload chunk ${start}-${end} of ${blob.digest} to ${repository}`);
      await res.body?.cancel();
      location = this.uploadLocation(res) ?? location;
    }
    const res = await this.request('', {
      url: withDigest(location, blob.digest),
      method: 'PUT',
      scope,
      headers: { 'content-length': '0' },
      body: '',
      what: `finish upload of ${blob.digest} to ${repository}`,
    });
    if (res.status !== 201) throw await this.unexpected(res, `finish upload of ${blob.digest} to ${repository}`);
    await res.body?.cancel();
  }

  /**
   * The upload session's Location, absolute; null if the answer has none. It gets the
   * credentials, so it must be on the registry's own origin (RegistryError 'not-allowed').
   */
  private uploadLocation(res: Response): string | null {
    const location = res.headers.get('location');
    if (!location) return null;
    let url: URL;
    try {
      url = new URL(location, this.hosts.origin);
    } catch (err) {
      throw new RegistryError(`registry ${this.host} opened an upload at a Location that is not a URL`, 'invalid', { cause: err });
    }
    this.hosts.checkUploadLocation(url);
    return url.toString();
  }
}

export const pullScope = (repository: string): string => `repository:${repository}:pull`;
export const pushScope = (repository: string): string => `repository:${repository}:pull,push`;

function withDigest(location: string, digest: Digest): string {
  const url = new URL(location);
  url.searchParams.set('digest', digest);
  return url.toString();
}

function isDescriptor(d: unknown): d is Descriptor {
  const v = d as Partial<Descriptor> | null;
  return (
    !!v &&
    typeof v === 'object' &&
    typeof v.mediaType === 'string' &&
    typeof v.digest === 'string' &&
    isDigest(v.digest) &&
    Number.isSafeInteger(v.size) &&
    (v.size as number) >= 0
  );
}

/**
 * Parse and check a manifest body: an image manifest (config + layers) or an index/list of at
 * most `maxIndexManifests` entries. What the body says is quoted in errors only as foreignName.
 */
export function parseManifest(
  bytes: Buffer,
  digest: Digest,
  contentType: string | null,
  what: string,
  maxIndexManifests = DEFAULT_REGISTRY_LIMITS.maxIndexManifests,
): FetchedManifest {
  let value: Record<string, unknown>;
  try {
    value = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
  } catch {
    throw new RegistryError(`manifest ${what} is not JSON`, 'invalid');
  }
  if (!value || typeof value !== 'object') throw new RegistryError(`manifest ${what} is not a JSON object`, 'invalid');
  const declared = typeof value.mediaType === 'string' ? value.mediaType : (contentType ?? '').split(';')[0]?.trim() ?? '';
  if (value.schemaVersion === 1) throw new RegistryError(`manifest ${what} is schema 1, which is not supported`, 'invalid');
  if (value.schemaVersion !== 2) throw new RegistryError(`manifest ${what} has schemaVersion ${typeof value.schemaVersion === 'number' ? value.schemaVersion : foreignName(value.schemaVersion, 20)}, expected 2`, 'invalid');
  const isIndex = Array.isArray(value.manifests) && (INDEX_TYPES.includes(declared) || !('config' in value));
  if (isIndex) {
    const manifests = value.manifests as unknown[];
    if (manifests.length > maxIndexManifests) {
      throw new BudgetExceededError(REGISTRY_LIMIT_SETTINGS.maxIndexManifests, maxIndexManifests, `index ${what} lists ${manifests.length} manifests`);
    }
    if (!manifests.every(isDescriptor)) throw new RegistryError(`index ${what} has an invalid descriptor`, 'invalid');
    return { digest, bytes, mediaType: declared || MEDIA_TYPES.ociIndex, kind: 'index', index: value as unknown as IndexManifest };
  }
  if (declared && !IMAGE_MANIFEST_TYPES.includes(declared)) throw new RegistryError(`manifest ${what} has unsupported media type '${foreignName(declared)}'`, 'invalid');
  if (!isDescriptor(value.config) || !Array.isArray(value.layers) || !value.layers.every(isDescriptor)) {
    throw new RegistryError(`manifest ${what} lacks a valid config or layers`, 'invalid');
  }
  return { digest, bytes, mediaType: declared || MEDIA_TYPES.ociManifest, kind: 'image', image: value as unknown as ImageManifest };
}

/** Platforms an error lists when none fits; an index may have many more. */
const MAX_PLATFORMS_LISTED = 20;

/** The linux/`architecture` entry of an index (variant ignored unless given as `arm64/v8` style). */
export function selectPlatform(index: IndexManifest, architecture: string, what: string): Descriptor {
  const [arch, variant] = architecture.split('/');
  const found = index.manifests.find(
    (m) => (m.platform?.os ?? 'linux') === 'linux' && m.platform?.architecture === arch && (variant === undefined || m.platform?.variant === variant),
  );
  if (!found) {
    const platforms = new Set<string>();
    for (const m of index.manifests) {
      const p = m.platform;
      platforms.add(p && typeof p === 'object' ? [p.os, p.architecture, p.variant].filter(Boolean).map((x) => foreignName(x, 20)).join('/') : m.digest);
    }
    const listed = [...platforms].slice(0, MAX_PLATFORMS_LISTED).join(', ');
    const more = platforms.size > MAX_PLATFORMS_LISTED ? ` and ${platforms.size - MAX_PLATFORMS_LISTED} more` : '';
    throw new RegistryError(`${what} has no linux/${architecture} image (it has: ${listed || 'none'}${more})`, 'platform');
  }
  return found;
}
