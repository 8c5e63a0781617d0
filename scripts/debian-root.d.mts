/** Types of scripts/debian-root.mjs (plain Node so scripts/setup.mjs can run it before tsx). */
export interface DebianRoot {
  /** The cache entry's directory (named by the inputs' hash). */
  dir: string;
  /** The tar exactly as mmdebstrap wrote it (GNU format, /dev nodes included). */
  tar: string;
  /** JSON: key, the inputs (mmdebstrap version, suite, variant, arch, mirror), seconds, size. */
  manifest: string;
}

export interface EnsureDebianRootOptions {
  /** Default: $BALER_DEBIAN_ROOT_CACHE, else <repo>/.cache/debian-root. */
  cacheDir?: string;
  /** Default: $BALER_DEBIAN_MIRROR, else apt's first `deb` source for the suite. */
  mirror?: string;
  /** Make it again even when cached. */
  force?: boolean;
  /** Progress messages (default: stderr). */
  log?: (message: string) => void;
}

export function defaultCacheDir(env?: NodeJS.ProcessEnv): string;
export function aptMirror(suite?: string): string | undefined;
export function ensureDebianRoot(options?: EnsureDebianRootOptions): Promise<DebianRoot>;
