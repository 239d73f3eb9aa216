/** Retry and backoff as a policy with a replaceable delay function (tests pass their own). */

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
