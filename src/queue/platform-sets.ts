/**
 * A build class's platform part names one platform or several: a multi-platform build whose VM
 * steps run on several platforms runs on one worker, which must serve them all. Several are
 * joined by `+` in VM_PLATFORMS order (`linux/amd64+linux/arm64`), so one set has one name.
 */
import { VM_PLATFORMS } from '../vm/platforms/index.ts';

const SEPARATOR = '+';

/** Known platforms first, in VM_PLATFORMS order; others after, by name. */
function rank(name: string): number {
  const i = VM_PLATFORMS.findIndex((p) => p.name === name);
  return i < 0 ? VM_PLATFORMS.length : i;
}

/** The name of a set of platforms (each once, in a fixed order). */
export function platformSetName(platforms: readonly string[]): string {
  return [...new Set(platforms)].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b)).join(SEPARATOR);
}

/** The platforms a set's name names. */
export function platformsInSet(name: string): string[] {
  return name.split(SEPARATOR);
}

/** Every non-empty set of `platforms`, by name: the sets of several first (fewer hosts serve them), then each one in the given order. */
export function platformSets(platforms: readonly string[]): string[] {
  const sets: string[][] = [[]];
  for (const p of platforms) sets.push(...sets.map((s) => [...s, p]));
  const several = sets.filter((s) => s.length > 1).sort((a, b) => b.length - a.length);
  const singles = sets.filter((s) => s.length === 1);
  return [...several, ...singles].map(platformSetName);
}
