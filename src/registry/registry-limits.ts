/**
 * What baler accepts from a registry: how big its documents may be, how many entries an index
 * may list, how many redirects it may send a request through, how big a token answer may be.
 * A registry is chosen by the tenant (its ref) and may be compromised, so none of these is
 * left to the registry. Set by the operator (`BALER_REGISTRY_*`, see src/config.ts); listed
 * with their defaults in SECURITY.md.
 */
export interface RegistryLimits {
  /** Largest manifest, index or image config read (they are read whole). */
  maxDocumentBytes: number;
  /** Most entries an index / manifest list may have. */
  maxIndexManifests: number;
  /** Most redirects one request may follow. */
  maxRedirects: number;
  /** Largest answer of a token service read. */
  maxTokenBytes: number;
}

/** The environment variable that sets each limit (named by BudgetExceededError). */
export const REGISTRY_LIMIT_SETTINGS: { readonly [K in keyof RegistryLimits]: string } = {
  maxDocumentBytes: 'BALER_REGISTRY_MAX_DOCUMENT_BYTES',
  maxIndexManifests: 'BALER_REGISTRY_MAX_INDEX_MANIFESTS',
  maxRedirects: 'BALER_REGISTRY_MAX_REDIRECTS',
  maxTokenBytes: 'BALER_REGISTRY_MAX_TOKEN_BYTES',
};

export const DEFAULT_REGISTRY_LIMITS: Readonly<RegistryLimits> = {
  // The distribution spec's manifest limit; configs share it.
  maxDocumentBytes: 4 * 1024 * 1024,
  // Real multi-platform indexes have tens of entries (attestations double them).
  maxIndexManifests: 1000,
  // Go's http client (docker, containerd) stops at 10; a blob needs one hop to its storage.
  maxRedirects: 5,
  // Tokens are a few KiB of JWT.
  maxTokenBytes: 1024 * 1024,
};
