/** Retry and backoff as a policy with a replaceable delay function (tests pass their own), and the one retry loop. */
import { SharedStructError, abortError, throwIfAborted } from './errors.js';
import { sleep } from './util/abort.js';

/** How a loop waits between attempts. */
export interface BackoffPolicy {
  /** Milliseconds to wait before retry number `attempt` (1-based). */
  delayMs(attempt: number): number;
}

/** Options of {@link exponentialBackoff}. */
export interface ExponentialBackoffOptions {
  readonly initialMs?: number;
  readonly maxMs?: number;
  readonly factor?: number;
  /** Fraction of the delay that is random (0..1); full jitter at 1. */
  readonly jitter?: number;
  /** Random source in [0, 1), replaceable for tests. */
  readonly random?: () => number;
}

/**
 * Exponential backoff with jitter: `initialMs * factor^(attempt-1)`, capped at `maxMs`, with
 * the `jitter` share of it random so that contending writers spread out.
 */
export function exponentialBackoff(options: ExponentialBackoffOptions = {}): BackoffPolicy {
  const initialMs = options.initialMs ?? 2;
  const maxMs = options.maxMs ?? 200;
  const factor = options.factor ?? 2;
  const jitter = options.jitter ?? 0.5;
  const random = options.random ?? Math.random;
  return {
    delayMs(attempt: number): number {
      const base = Math.min(maxMs, initialMs * factor ** Math.max(0, attempt - 1));
      return base * (1 - jitter) + base * jitter * random();
    },
  };
}

/** One attempt of {@link retry}. */
export interface Attempt {
  /** 1 for the first attempt, counting again from 1 after {@link Attempt.progress}. */
  readonly number: number;
  /** Marks that this attempt made progress (a watch delivered events): the next failure backs off from the start. */
  progress(): void;
}

/** Options of {@link retry}. */
export interface RetryOptions {
  /** What is retried, for logs (`"watch of 'flags'"`). */
  readonly what: string;
  /** Delays between attempts (default: exponential with jitter, 50 ms to 2 s). */
  readonly policy?: BackoffPolicy;
  /** Stops waiting and retrying: rejects with the signal's error (`ABORTED`, `CLOSED`, ...). */
  readonly signal?: AbortSignal;
  /** Give up after this many failed attempts in a row, rejecting with the last error (default: never). */
  readonly maxAttempts?: number;
  /** Give up once `Date.now()` passes this, rejecting with the last error (default: never). */
  readonly giveUpAt?: number;
  /**
   * Whether a failure is worth another attempt. Default: a retryable {@link SharedStructError}
   * (`CONNECTION`, `TIMEOUT`, `SESSION_LOST`, ...); anything else rejects at once.
   */
  readonly retryIf?: (err: unknown) => boolean;
  /** Told about every failure that will be retried, with the delay before the next attempt. */
  readonly onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
}

/**
 * Runs `fn` until it resolves, backing off between failures by `policy`. The one retry loop of
 * the library: callers say what is retryable and when to give up, the loop does the waiting,
 * the abort handling and the counting. A long-running `fn` (a watch) calls `attempt.progress()`
 * when it delivers, so a stream that breaks after hours of service restarts quickly.
 *
 * @example
 * ```ts
 * await retry(() => backend.delete(key), { what: 'release', giveUpAt: Date.now() + 60_000 });
 * ```
 */
export async function retry<T>(fn: (attempt: Attempt) => Promise<T>, options: RetryOptions): Promise<T> {
  const policy = options.policy ?? DEFAULT_POLICY;
  const retryIf = options.retryIf ?? isRetryable;
  let failures = 0;
  const progress = (): void => {
    failures = 0;
  };
  for (;;) {
    throwIfAborted(options.signal);
    try {
      return await fn({ number: failures + 1, progress });
    } catch (err) {
      if (options.signal?.aborted) throw abortError(options.signal);
      failures += 1;
      const maxed = options.maxAttempts !== undefined && failures >= options.maxAttempts;
      const late = options.giveUpAt !== undefined && Date.now() >= options.giveUpAt;
      if (!retryIf(err) || maxed || late) throw err;
      const delay = policy.delayMs(failures);
      options.onRetry?.(err, failures, delay);
      await sleep(delay, options.signal);
    }
  }
}

const DEFAULT_POLICY = exponentialBackoff({ initialMs: 50, maxMs: 2000 });

/** Whether `err` is a {@link SharedStructError} marked retryable. */
export function isRetryable(err: unknown): boolean {
  return err instanceof SharedStructError && err.retryable;
}
