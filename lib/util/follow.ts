/** The loop behind `Election.observe()` and `Group.changes()`: watch, and watch again, until aborted. */
import type { AsyncQueue } from './async-queue.js';

/**
 * Runs `round` (one watch from start to end) again and again until `signal` aborts, then ends
 * `queue`; the first error that is not the abort fails `queue` with it. Runs in the background.
 */
export function follow<T>(queue: AsyncQueue<T>, signal: AbortSignal, round: () => Promise<void>): void {
  void (async () => {
    try {
      while (!signal.aborted) await round();
      queue.end();
    } catch (err) {
      if (signal.aborted) queue.end();
      else queue.fail(err);
    }
  })();
}
