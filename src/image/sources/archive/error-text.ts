/**
 * Error texts quote what an archive says (names, paths, platforms), and an archive may say a
 * lot: these keep a message short whatever the archive holds.
 */

/** How many items a list in an error names before "… and N more". */
export const ITEMS_LISTED = 8;
/** Longest single item (a name, a path) quoted in a list. */
export const ITEM_CHARS = 120;

/** `text`, cut to at most `maxChars` characters (ending in `…` when cut). */
export function clipText(text: string, maxChars: number): string {
  if (text.length <= maxChars) return text;
  if (maxChars < 1) return '';
  let end = maxChars - 1;
  // Not between the halves of a surrogate pair.
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end -= 1;
  return `${text.slice(0, end)}…`;
}

/**
 * `a, b, c`: the first `max` items (each clipped), then `… and N more` for the rest. Items
 * are taken as given: a caller that wants a stable list sorts first.
 */
export function listSome(items: readonly string[], max = ITEMS_LISTED): string {
  const shown = items.slice(0, max).map((item) => clipText(item, ITEM_CHARS));
  if (items.length > max) shown.push(`… and ${items.length - max} more`);
  return shown.join(', ');
}
