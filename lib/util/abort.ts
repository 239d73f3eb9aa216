/** Deadlines and abort signals for calls that wait: one place, so no adapter leaks a timer. */
import { SharedStructError, abortError } from '../errors.js';

/** Resolves after `ms`, or rejects `ABORTED` when the signal fires; the timer is unref'd. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal));
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortError(signal!));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    timer.unref?.();
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Runs `fn` with a signal that fires when `signal` fires or `timeoutMs` passes. A deadline
 * rejects `TIMEOUT` naming `what`; the caller's abort rejects `ABORTED`. `fn` should pass the
 * signal down, but the race does not depend on it: a call that ignores it still rejects on time.
 */
export async function withDeadline<T>(
  what: string,
  timeoutMs: number,
  signal: AbortSignal | undefined,
  fn: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  if (signal?.aborted) throw abortError(signal);
  const controller = new AbortController();
  let onAbort: (() => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  const stop = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const err = new SharedStructError('TIMEOUT', `${what} did not answer within ${timeoutMs} ms: the store is unreachable or overloaded (raise 'requestTimeoutMs' if it is only slow)`);
      controller.abort(err);
      reject(err);
    }, timeoutMs);
    timer.unref?.();
    if (signal) {
      onAbort = () => {
        const err = abortError(signal);
        controller.abort(err);
        reject(err);
      };
      signal.addEventListener('abort', onAbort, { once: true });
    }
  });
  try {
    return await Promise.race([fn(controller.signal), stop]);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener('abort', onAbort);
  }
}

/** A signal that fires when any of `signals` fires (undefined ones ignored). */
export function anySignal(...signals: (AbortSignal | undefined)[]): AbortSignal {
  const present = signals.filter((s): s is AbortSignal => s !== undefined);
  if (present.length === 1) return present[0]!;
  return AbortSignal.any(present);
}
