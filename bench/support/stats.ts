/** Small statistics and table helpers for the benchmarks. */

/** Milliseconds since `t0` (from process.hrtime.bigint()), to 0.1 ms. */
export function elapsedMs(t0: bigint): number {
  return msBetween(t0, process.hrtime.bigint());
}

/** Milliseconds from `a` to `b` (process.hrtime.bigint() values), to 0.1 ms. */
export function msBetween(a: bigint, b: bigint): number {
  return Math.round(Number(b - a) / 1e5) / 10;
}

export interface Summary {
  n: number;
  median: number;
  mean: number;
  min: number;
  max: number;
}

export function summarize(samples: readonly number[]): Summary {
  if (samples.length === 0) throw new Error('no samples');
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
  const mean = sorted.reduce((a, b) => a + b, 0) / sorted.length;
  return { n: sorted.length, median, mean, min: sorted[0] as number, max: sorted[sorted.length - 1] as number };
}

/** A Markdown table (readable as plain text too): columns padded to the widest cell. */
export function markdownTable(header: readonly string[], rows: readonly (readonly string[])[], alignRight: readonly boolean[] = []): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const cell = (text: string, i: number): string => (alignRight[i] ? text.padStart(widths[i] as number) : text.padEnd(widths[i] as number));
  const line = (cells: readonly string[]): string => `| ${cells.map((c, i) => cell(c, i)).join(' | ')} |`;
  const rule = `| ${widths.map((w, i) => (alignRight[i] ? '-'.repeat(Math.max(w - 1, 1)) + ':' : '-'.repeat(w))).join(' | ')} |`;
  return [line(header), rule, ...rows.map(line)].join('\n');
}

export function fmtMs(ms: number): string {
  return ms.toFixed(0);
}

export function fmtRatio(r: number): string {
  return `${r.toFixed(2)}×`;
}
