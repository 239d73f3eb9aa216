/** What the bench sections share: the table's row and the percentile of a sample. */

/** A row of the bench table (bench/run.ts prints them and writes docs/PERFORMANCE.md). */
export interface Row {
  backend: string;
  payload: string;
  measure: string;
  ours: number;
  raw: number | undefined;
  unit: string;
  /** ours / raw (or raw / ours for latencies, so that > 1 is always "we are better"). */
  ratio: number | undefined;
  runs: string;
  durationMs: number;
  target?: string;
  holds?: boolean;
}

/** The `p`th percentile (nearest rank) of `xs`; NaN when empty. */
export function pct(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN;
}
