/**
 * Spec amplification (issue 12, attack 4): a spec that names one small blob many times makes
 * a layer many times that size, though the tenant uploaded (and was charged for) it once.
 */
export function amplifiedSpec(blob: string, times = 300): { name: string; compression: string; contents: Array<{ file: string; to: string }> } {
  return {
    name: 'hostile/amplified',
    // Random bytes do not compress: the layer is times × the blob, however it is stored.
    compression: 'none',
    contents: Array.from({ length: times }, (_, i) => ({ file: blob, to: `/copies/${i}` })),
  };
}
