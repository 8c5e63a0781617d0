/**
 * How a build's contents are split into layers (dockerTools' buildLayeredImage): with room for
 * every contents entry, each gets a layer of its own; otherwise the biggest entries get their
 * own layers and the rest share one. Equal entries give equal layers, so registries and Docker
 * reuse them across builds, and changing one entry changes only its own layer (or the shared
 * one). Returns groups of entry indexes, in layer order: own layers in spec order, then the
 * shared one.
 */
export function planContentLayers(sizes: number[], budget: number): number[][] {
  if (sizes.length === 0) return [];
  if (budget < 1) throw new Error('no room for a contents layer');
  if (sizes.length <= budget) return sizes.map((_, i) => [i]);
  const bySize = sizes.map((size, i) => ({ size, i })).sort((a, b) => b.size - a.size || a.i - b.i);
  const alone = new Set(bySize.slice(0, budget - 1).map((e) => e.i));
  const own = [...alone].sort((a, b) => a - b).map((i) => [i]);
  const shared = sizes.map((_, i) => i).filter((i) => !alone.has(i));
  return [...own, shared];
}
