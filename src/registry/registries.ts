import { readFileSync } from 'node:fs';
import { loadRegistryLimits } from '../config.ts';
import { isDigest, type Digest } from '../digest.ts';
import { DEFAULT_REGISTRY_LIMITS, type RegistryLimits } from './registry-limits.ts';

/** How the service reaches one registry the operator allows, and whom else it may contact for it. */
export interface RegistryConfig {
  /** Plain http instead of https (also allows an http token realm and http redirects). */
  insecure: boolean;
  username?: string;
  password?: string;
  /**
   * Other `host[:port]`s a request to this registry may be redirected to (where its blobs are
   * stored, e.g. an S3 bucket or a CDN). They never get the credentials.
   */
  redirectHosts?: readonly string[];
  /** Other `host[:port]`s whose token service (a Bearer realm) may get this registry's credentials. */
  tokenRealmHosts?: readonly string[];
  /** Unset: DEFAULT_REGISTRY_LIMITS. */
  limits?: RegistryLimits;
}

/** The operator's allow-list: `host:port` → how to reach it. Nothing else is ever contacted for a pull or push. */
export type Registries = ReadonlyMap<string, RegistryConfig>;

export type RegistryErrorKind =
  | 'reference' // the ref does not parse
  | 'not-allowed' // host not in the allow-list, or a redirect, token realm or upload Location a registry may not use
  | 'unreachable'
  | 'auth' // no or wrong credentials
  | 'not-found' // manifest / blob unknown
  | 'platform' // no manifest for the architecture asked
  | 'invalid' // the registry sent something wrong (digest mismatch, bad manifest, …)
  | 'protocol'; // an unexpected HTTP status

/**
 * Anything about a registry the user asked for: a bad ref, a host not allowed, an image that
 * is not there, credentials rejected, content that does not verify. The API maps it to 422.
 */
export class RegistryError extends Error {
  constructor(
    message: string,
    readonly kind: RegistryErrorKind,
    opts?: { cause?: unknown; status?: number },
  ) {
    super(message, opts);
    this.name = 'RegistryError';
    this.status = opts?.status;
  }
  readonly status: number | undefined;
}

export const REGISTRIES_FILE_ENV = 'BALER_REGISTRIES_FILE';

const FIELDS = ['insecure', 'username', 'password', 'redirectHosts', 'tokenRealmHosts'];

/**
 * Validate the parsed JSON of a registries file; every entry gets `limits`. Throws Error (an
 * operator mistake, not a user one).
 */
export function parseRegistries(value: unknown, source = 'registries', limits: RegistryLimits = DEFAULT_REGISTRY_LIMITS): Registries {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new Error(`${source}: expected a JSON object {"host:port": {"insecure", "username", "password", "redirectHosts", "tokenRealmHosts"}}`);
  }
  const out = new Map<string, RegistryConfig>();
  for (const [host, raw] of Object.entries(value as Record<string, unknown>)) {
    if (!HOST_RE.test(host)) throw new Error(`${source}: '${host}' is not a registry host[:port]`);
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new Error(`${source}: '${host}' must map to an object`);
    const r = raw as Record<string, unknown>;
    for (const key of Object.keys(r)) {
      if (!FIELDS.includes(key)) throw new Error(`${source}: '${host}': unknown field '${key}'`);
    }
    if (r.insecure !== undefined && typeof r.insecure !== 'boolean') throw new Error(`${source}: '${host}': insecure must be true or false`);
    for (const key of ['username', 'password'] as const) {
      if (r[key] !== undefined && typeof r[key] !== 'string') throw new Error(`${source}: '${host}': ${key} must be a string`);
    }
    if ((r.username === undefined) !== (r.password === undefined)) throw new Error(`${source}: '${host}': give both username and password, or neither`);
    out.set(host.toLowerCase(), {
      insecure: r.insecure === true,
      username: r.username as string | undefined,
      password: r.password as string | undefined,
      redirectHosts: hostList(r.redirectHosts, `${source}: '${host}': redirectHosts`),
      tokenRealmHosts: hostList(r.tokenRealmHosts, `${source}: '${host}': tokenRealmHosts`),
      limits,
    });
  }
  return out;
}

function hostList(value: unknown, what: string): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new Error(`${what} must be a list of host[:port]`);
  return value.map((h) => {
    if (typeof h !== 'string' || !HOST_RE.test(h)) throw new Error(`${what}: '${String(h)}' is not a host[:port]`);
    return h.toLowerCase();
  });
}

/**
 * The allow-list from the JSON file named by `BALER_REGISTRIES_FILE` (or `path`); empty when
 * neither is set: no registry is allowed by default. `limits` default to the environment's
 * `BALER_REGISTRY_MAX_*`.
 */
export function loadRegistries(path: string | undefined = process.env[REGISTRIES_FILE_ENV], limits: RegistryLimits = loadRegistryLimits()): Registries {
  if (!path) return new Map();
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`${REGISTRIES_FILE_ENV}: cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`${REGISTRIES_FILE_ENV}: ${path} is not JSON: ${(err as Error).message}`, { cause: err });
  }
  return parseRegistries(value, path, limits);
}

/** A parsed `host[:port]/repo[:tag][@sha256:…]`. */
export interface ImageReference {
  /** `host` or `host:port`, lowercased. */
  host: string;
  /** The repository path within the registry, e.g. `team/app`. */
  repository: string;
  tag?: string;
  digest?: Digest;
}

// host: a DNS name or an IPv4 address or [IPv6], optional port.
const HOST_RE = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:.]+\])(?::[0-9]{1,5})?$/;
const COMPONENT_RE = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;
const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

/** `repo:tag`, or `repo@digest` when pinned: what a manifest is fetched by. */
export function manifestReference(ref: ImageReference): string {
  return ref.digest ?? ref.tag ?? 'latest';
}

export function formatReference(ref: ImageReference): string {
  return `${ref.host}/${ref.repository}${ref.tag ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`;
}

/**
 * Parse `host:port/repo[:tag|@sha256:…]` (both tag and digest allowed; the digest wins). The
 * first path component is always the registry host: there is no implicit Docker Hub. No tag
 * and no digest means `latest`. Throws RegistryError ('reference') saying what is wrong.
 */
export function parseReference(ref: string): ImageReference {
  const bad = (why: string) => new RegistryError(`invalid image reference '${ref}': ${why}`, 'reference');
  if (typeof ref !== 'string' || ref.length === 0) throw bad('empty');
  if (ref.length > 512) throw bad('longer than 512 characters');
  let rest = ref;
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    const d = rest.slice(at + 1);
    if (!isDigest(d)) throw bad(`'${d}' is not a sha256 digest (sha256:<64 lowercase hex>)`);
    digest = d;
    rest = rest.slice(0, at);
  }
  const slash = rest.indexOf('/');
  if (slash === -1) throw bad('it must start with the registry host, as host:port/repository[:tag]');
  const host = rest.slice(0, slash);
  if (!HOST_RE.test(host)) throw bad(`'${host}' is not a registry host[:port]`);
  let path = rest.slice(slash + 1);
  let tag: string | undefined;
  const colon = path.lastIndexOf(':');
  if (colon !== -1) {
    tag = path.slice(colon + 1);
    path = path.slice(0, colon);
    if (!TAG_RE.test(tag)) throw bad(`tag '${tag}' is not valid (letters, digits, '_', '.', '-'; at most 128; not starting with '.' or '-')`);
  }
  if (path.length === 0) throw bad('no repository name after the host');
  if (path.length > 255) throw bad('the repository name is longer than 255 characters');
  for (const component of path.split('/')) {
    if (!COMPONENT_RE.test(component)) {
      throw bad(`repository path component '${component}' must be lowercase letters and digits, separated by '.', '_', '__' or '-'`);
    }
  }
  return { host: host.toLowerCase(), repository: path, tag: tag ?? (digest ? undefined : 'latest'), digest };
}

/** The allow-list's entry for the ref's host; RegistryError ('not-allowed') if there is none. */
export function registryFor(registries: Registries, host: string): RegistryConfig {
  const config = registries.get(host.toLowerCase());
  if (!config) {
    const allowed = [...registries.keys()];
    throw new RegistryError(
      `registry '${host}' is not allowed: this service only talks to the registries its operator lists in ${REGISTRIES_FILE_ENV}` +
        (allowed.length ? ` (${allowed.join(', ')})` : ' (none are listed)'),
      'not-allowed',
    );
  }
  return config;
}

/**
 * Where a push goes: a tag (the registry names the digest) at a registry the operator allows.
 * RegistryError ('reference', 'not-allowed') otherwise.
 */
export function parsePushReference(refText: string, registries: Registries): ImageReference {
  const ref = parseReference(refText);
  if (ref.digest) throw new RegistryError(`push to a tag, not a digest ('${refText}')`, 'reference');
  registryFor(registries, ref.host);
  return ref;
}
