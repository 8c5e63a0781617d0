import { foreignName } from './foreign-text.ts';
import type { Descriptor, IndexManifest } from './manifest.ts';
import { RegistryError } from './registries.ts';

/** Platforms an error lists when none fits; an index may have many more. */
const MAX_PLATFORMS_LISTED = 20;

/** The linux/`architecture` entry of an index (variant ignored unless given as `arm64/v8` style). */
export function selectPlatform(index: IndexManifest, architecture: string, what: string): Descriptor {
  const [arch, variant] = architecture.split('/');
  const found = index.manifests.find((m) => (m.platform?.os ?? 'linux') === 'linux' && m.platform?.architecture === arch && (variant === undefined || m.platform?.variant === variant));
  if (!found) {
    const platforms = new Set<string>();
    for (const m of index.manifests) {
      const p = m.platform;
      platforms.add(
        p && typeof p === 'object'
          ? [p.os, p.architecture, p.variant]
              .filter(Boolean)
              .map((x) => foreignName(x, 20))
              .join('/')
          : m.digest,
      );
    }
    const listed = [...platforms].slice(0, MAX_PLATFORMS_LISTED).join(', ');
    const more = platforms.size > MAX_PLATFORMS_LISTED ? ` and ${platforms.size - MAX_PLATFORMS_LISTED} more` : '';
    throw new RegistryError(`${what} has no linux/${architecture} image (it has: ${listed || 'none'}${more})`, 'platform');
  }
  return found;
}
