/** The loop behind `Election.observe()` and `Group.changes()`: watch, and watch again, until aborted. */
import { SharedStructError } from '../errors.js';
import { retry } from '../retry.js';
import type { AsyncQueue } from './async-queue.js';

/**
 * Runs `round` (one watch from start to end) through the retry helper until `signal` aborts,
 * then ends `queue`; a round that fails with a retryable error (a disconnect, a deadline) is run
 * again after a backoff, one that made progress (`progress()`) backs off from the start again,
 * and an error retrying cannot fix fails `queue` with it. Runs in the background.
 */
export function follow<T>(queue: AsyncQueue<T>, signal: AbortSignal, what: string, round: (progress: () => void) => Promise<void>): void {
  void retry(
    async (attempt) => {
      while (!signal.aborted) {
        await round(() => attempt.progress());
        if (!signal.aborted) throw new SharedStructError('CONNECTION', `${what}: the watch ended`);
      }
    },
    { what, signal },
  ).then(
    () => queue.end(),
    (err: unknown) => (signal.aborted ? queue.end() : queue.fail(err)),
  );
}
