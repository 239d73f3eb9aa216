/** The one error class of the library, its stable codes, and the helpers that build it. */

/**
 * Stable error codes. Match on `err.code`, never on the message.
 *
 * | code | meaning | retryable |
 * | --- | --- | --- |
 * | `INVALID_ARGUMENT` | a bad option, URL or argument; the message names it | no |
 * | `INVALID_NAME` | a struct, lock, election or group name breaks the naming rule | no |
 * | `INVALID_VALUE` | a value is not plain JSON; the message names the path | no |
 * | `VALUE_TOO_LARGE` | the encoded value exceeds the backend's limit | no |
 * | `SCHEMA_VALIDATION` | a local write fails the struct's JSON Schema | no |
 * | `NOT_FOUND` | the struct does not exist (or was deleted) | no |
 * | `CONFLICT` | a compare-and-set lost, or `update` ran out of retries | yes |
 * | `STALE_READ` | the cache was not confirmed within `maxStalenessMs` | yes |
 * | `LOCK_TIMEOUT` | a lock was not acquired within `waitMs` | yes |
 * | `LOCK_LOST` | a held lock was lost (session lost or suspended past its ttl) | no |
 * | `SESSION_LOST` | the session expired while a call depended on it | yes |
 * | `CONNECTION` | the backend could not be reached | yes |
 * | `TIMEOUT` | a call's deadline passed | yes |
 * | `CORRUPT_REMOTE_VALUE` | a stored value could not be decoded or failed its schema | no |
 * | `UNAUTHORIZED` | the backend refused the credentials or the operation | no |
 * | `ABORTED` | the caller's `AbortSignal` fired | no |
 * | `CLOSED` | the client or struct was closed | no |
 * | `UNSUPPORTED` | the backend cannot do what was asked | no |
 * | `HANDLER_FAILED` | a durable server's handler threw on a message `maxAttempts` times; the message is in the dead letters | no |
 * | `QUEUE_FULL` | a durable server's queue holds `maxQueueLength` messages; nothing was queued | yes |
 */
export const ErrorCodes = [
  'INVALID_ARGUMENT',
  'INVALID_NAME',
  'INVALID_VALUE',
  'VALUE_TOO_LARGE',
  'SCHEMA_VALIDATION',
  'NOT_FOUND',
  'CONFLICT',
  'STALE_READ',
  'LOCK_TIMEOUT',
  'LOCK_LOST',
  'SESSION_LOST',
  'CONNECTION',
  'TIMEOUT',
  'CORRUPT_REMOTE_VALUE',
  'UNAUTHORIZED',
  'ABORTED',
  'CLOSED',
  'UNSUPPORTED',
  'HANDLER_FAILED',
  'QUEUE_FULL',
] as const;

/** One of {@link ErrorCodes}. */
export type ErrorCode = (typeof ErrorCodes)[number];

const RETRYABLE: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'CONFLICT',
  'STALE_READ',
  'LOCK_TIMEOUT',
  'SESSION_LOST',
  'CONNECTION',
  'TIMEOUT',
  'QUEUE_FULL',
]);

const BRAND = Symbol.for('sharedstruct.SharedStructError');

/** Options of {@link SharedStructError}. */
export interface SharedStructErrorOptions {
  /** The underlying error (a backend error, an Ajv result, an abort reason). */
  readonly cause?: unknown;
  /** Overrides the code's default retryability. */
  readonly retryable?: boolean;
  /** Structured details (Ajv errors for `SCHEMA_VALIDATION`, the path for `INVALID_VALUE`, ...). */
  readonly details?: unknown;
}

/**
 * The base class of every error this library throws or rejects with.
 *
 * @example
 * ```ts
 * try { flags.read(); }
 * catch (err) {
 *   if (err instanceof SharedStructError && err.code === 'STALE_READ') useFallback();
 *   else throw err;
 * }
 * ```
 */
export class SharedStructError extends Error {
  declare readonly name: 'SharedStructError';
  /** @internal Brand read by `instanceof` (see below). */
  readonly [BRAND] = true;

  /**
   * `instanceof` by brand, so an error made by a second loaded copy of this module (two installs
   * of the package; tsx instantiates dynamically imported adapters apart) still matches.
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }
  /** Stable machine-readable code. */
  readonly code: ErrorCode;
  /** Whether retrying the same call may succeed. */
  readonly retryable: boolean;
  /** Structured details, when the code has any. */
  readonly details: unknown;

  /**
   * `message` says what happened and what to do, without the code: print `${err.code}: ${err.message}`
   * or let the stack show it (`SharedStructError [CONNECTION]: ...`, as Node's own errors do).
   */
  constructor(code: ErrorCode, message: string, options: SharedStructErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retryable = options.retryable ?? RETRYABLE.has(code);
    this.details = options.details;
    // V8 formats the stack's first line from `name` when `stack` is first read: read it once
    // under a name that carries the code, then restore the class's name.
    Object.defineProperty(this, 'name', { value: `SharedStructError [${code}]`, configurable: true, writable: true });
    void this.stack;
    Object.defineProperty(this, 'name', { value: 'SharedStructError', configurable: true, writable: false, enumerable: false });
  }
}

/** True when `err` is a {@link SharedStructError}, optionally with one of `codes`. */
export function isSharedStructError(err: unknown, ...codes: ErrorCode[]): err is SharedStructError {
  return err instanceof SharedStructError && (codes.length === 0 || codes.includes(err.code));
}

/** The error to reject with when `signal` fired: `ABORTED` carrying the signal's reason. */
export function abortError(signal: AbortSignal): SharedStructError {
  const reason: unknown = signal.reason;
  if (reason instanceof SharedStructError) return reason;
  return new SharedStructError('ABORTED', 'the operation was aborted', { cause: reason });
}

/** Throws `ABORTED` when the signal has fired. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortError(signal);
}
