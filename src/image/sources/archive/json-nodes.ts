/**
 * What parsing JSON text allocates beyond its bytes is its objects, arrays and object members:
 * `[{},{},…]` takes some 18 times its size in heap, `{"k0":0,"k1":0,…}` 7 times, while strings,
 * numbers and literals take at most about twice theirs. Counting those nodes first, in one pass
 * over the bytes, bounds the heap a parse can take before it is allowed to run.
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const COLON = 0x3a;

/**
 * The objects, arrays and object members in JSON text (`{`, `[` and `:` outside strings),
 * counted up to `max + 1`: past that the exact number does not matter. Text that is not JSON
 * gets some count; parsing it fails anyway.
 */
export function countJsonNodes(bytes: Uint8Array, max: number): number {
  let nodes = 0;
  let inString = false;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if (inString) {
      if (b === BACKSLASH) i++;
      else if (b === QUOTE) inString = false;
    } else if (b === QUOTE) inString = true;
    else if (b === OPEN_BRACE || b === OPEN_BRACKET || b === COLON) {
      if (++nodes > max) return nodes;
    }
  }
  return nodes;
}
