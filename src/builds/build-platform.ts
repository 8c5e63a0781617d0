/**
 * The platform a build is for, from its spec's `architecture` (and `variant`): what its image
 * config says, and which VM platform its `runAsRoot`/`extraCommands` run on (so which workers
 * may take it: queue/capabilities.ts). Every build is for linux.
 */

/**
 * The variants an architecture's images may carry, the first being the one a spec that names
 * none gets (the OCI image index spec names `v8` for arm64; amd64 images carry none).
 */
const VARIANTS: Readonly<Record<string, readonly string[]>> = { arm64: ['v8'] };

/** The variant written into the image config when the spec names none: arm64 → v8, else none. */
export function defaultVariant(architecture: string): string | undefined {
  return VARIANTS[architecture]?.[0];
}

/** The variants a spec may name for `architecture` (none: it may name none). */
export function variantsOf(architecture: string): readonly string[] {
  return VARIANTS[architecture] ?? [];
}

/** The VM platform (a VmPlatform's name, `os/architecture`) a build's scripts run on. */
export function vmPlatformName(architecture: string): string {
  return `linux/${architecture}`;
}
