/** Request counting for the cost contract: adapters call `count(op)` once per request on the wire. */
import type { RequestCounters, RequestFailures } from '../backend.js';
import { isSharedStructError } from '../errors.js';

/** A {@link RequestCounters} that adapters increment at their client seam. */
export class Counters implements RequestCounters {
  readonly #counts = new Map<string, number>();
  readonly #failures = new Map<string, { operation: string; code: string; count: number }>();

  /** Records one request of kind `op` (e.g. `txn`, `range`, `setData`). */
  count(op: string): void {
    this.#counts.set(op, (this.#counts.get(op) ?? 0) + 1);
  }

  /**
   * Records that a request of kind `op` failed with `err` (its code; `CONNECTION` for anything
   * that is not a SharedStructError). A request its caller gave up on (`ABORTED`) is not counted.
   */
  failed(op: string, err: unknown): void {
    const code = isSharedStructError(err) ? err.code : 'CONNECTION';
    if (code === 'ABORTED') return;
    const key = `${op}\0${code}`;
    const f = this.#failures.get(key);
    if (f) f.count += 1;
    else this.#failures.set(key, { operation: op, code, count: 1 });
  }

  snapshot(): Readonly<Record<string, number>> {
    return Object.freeze(Object.fromEntries(this.#counts));
  }

  failures(): readonly RequestFailures[] {
    return Object.freeze([...this.#failures.values()].map((f) => Object.freeze({ ...f })));
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
