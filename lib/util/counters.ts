/** Request counting for the cost contract: adapters call `count(op)` once per request on the wire. */
import type { RequestCounters } from '../backend.js';

/** A {@link RequestCounters} that adapters increment at their client seam. */
export class Counters implements RequestCounters {
  readonly #counts = new Map<string, number>();

  /** Records one request of kind `op` (e.g. `txn`, `range`, `setData`). */
  count(op: string): void {
    this.#counts.set(op, (this.#counts.get(op) ?? 0) + 1);
  }

  snapshot(): Readonly<Record<string, number>> {
    return Object.freeze(Object.fromEntries(this.#counts));
  }
}

/** The requests made between two snapshots, zero counts left out. */
export function countsSince(
  before: Readonly<Record<string, number>>,
  after: Readonly<Record<string, number>>,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [op, n] of Object.entries(after)) {
    const d = n - (before[op] ?? 0);
    if (d !== 0) out[op] = d;
  }
  return out;
}
