/** Types of scripts/build-vm-assets.mjs (plain Node so scripts/setup.mjs can run it before tsx). */
export interface VmAssets {
  /** The cache entry's directory (named by the inputs' hash). */
  dir: string;
  /** Uncompressed ELF kernel, booted via PVH (`-kernel`). */
  kernel: string;
  /** Uncompressed newc cpio (`-initrd`). */
  initrd: string;
  /** JSON: key, kernel package/version/release, module load order, build time. */
  manifest: string;
}

export interface EnsureVmAssetsOptions {
  /** Default: $BALER_VM_CACHE, else <repo>/.cache/vm. */
  cacheDir?: string;
  /** Default: $BALER_VM_KERNEL_PACKAGE, else linux-image-cloud-amd64. */
  kernelPackage?: string;
  /** Rebuild even when the cache holds assets for the current inputs. */
  force?: boolean;
  /** Progress messages (default: stderr). */
  log?: (message: string) => void;
}

export function defaultCacheDir(env?: NodeJS.ProcessEnv): string;
export function extractVmlinux(bzImage: Buffer): Buffer;
export function ensureVmAssets(options?: EnsureVmAssetsOptions): Promise<VmAssets>;
