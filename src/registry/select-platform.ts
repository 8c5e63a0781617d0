import { bestFit, missingPlatformMessage, platformText, type WantedPlatform } from '../image/platform.ts';
import { foreignName } from './foreign-text.ts';
import type { Descriptor, IndexManifest } from './manifest.ts';
import { RegistryError } from './registries.ts';

/** Platforms an error lists when none fits; an index may have many more. */
const MAX_PLATFORMS_LISTED = 20;

/**
 * The entry of an index for `want` (os linux; of several variants, the architecture's default
 * one first). None: a RegistryError of kind `platform` naming the platforms the index has.
 */
export function selectPlatform(index: IndexManifest, want: WantedPlatform, what: string): Descriptor {
  const found = bestFit(index.manifests, (m) => m.platform, want);
  if (found) return found;
  const platforms = new Set<string>();
  for (const m of index.manifests) {
    const p = m.platform;
    platforms.add(p && typeof p === 'object' ? platformText(p, (part) => foreignName(part, 20)) : m.digest);
  }
  const listed = [...platforms].slice(0, MAX_PLATFORMS_LISTED).join(', ');
  const more = platforms.size > MAX_PLATFORMS_LISTED ? ` and ${platforms.size - MAX_PLATFORMS_LISTED} more` : '';
  throw new RegistryError(missingPlatformMessage(what, want, `${listed}${more}`), 'platform');
}
