/**
 * ZooKeeper error codes as the library's errors: {@link convertCode} is the one place a server
 * code becomes a `SharedStructError` (with advice where there is some), {@link describeError}
 * the one-line form logs use, and {@link NOT_SENT} marks a request that never left this client
 * (so it may go again on the next session). No I/O here: every other module may import it.
 */
import { SharedStructError } from '../../lib/errors.js';
import { ZkCodes, type ZkException } from './zk-client.js';

/** The error a ZooKeeper reply carried, kept as the `cause` of the converted error. */
export class ZooKeeperError extends Error {
  override readonly name = 'ZooKeeperError';
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/** Name of a ZooKeeper error code, for messages. */
export function codeName(code: number): string {
  for (const [name, value] of Object.entries(ZkCodes)) if (value === code) return name;
  return `ERROR_${code}`;
}

/** What a caller can do about a code, where there is something to do. */
const ADVICE: Readonly<Record<number, string>> = {
  [ZkCodes.NO_AUTH]: "the node's ACL does not admit this identity: connect with the `auth` that created it",
  [ZkCodes.AUTH_FAILED]: 'check the `auth` option (the user and password of a digest identity)',
  [ZkCodes.INVALID_ACL]: 'the server refused the ACL: check the `auth` option',
  [ZkCodes.NOT_EMPTY]: 'the key has children: delete them first',
  [ZkCodes.NO_CHILDREN_FOR_EPHEMERALS]: 'an ephemeral key cannot have children',
  [ZkCodes.THROTTLED]: 'the server is overloaded: retry later',
  [ZkCodes.NOT_READ_ONLY]: 'the server is read-only (no quorum): retry once the ensemble has a leader',
};

/** The sentence of a message that says what happened, per code. */
function describeCode(code: number): string {
  switch (code) {
    case ZkCodes.CONNECTION_LOSS:
      return 'the connection to ZooKeeper closed before the answer (the request may have been applied)';
    case ZkCodes.SESSION_EXPIRED:
      return 'the ZooKeeper session expired';
    case ZkCodes.SESSION_MOVED:
      return 'the ZooKeeper session moved to another connection';
    case ZkCodes.OPERATION_TIMEOUT:
      return 'ZooKeeper timed the operation out';
    case ZkCodes.AUTH_FAILED:
      return 'ZooKeeper refused the credentials (AUTH_FAILED)';
    default:
      return `ZooKeeper answered ${codeName(code)}`;
  }
}

/** Server error codes that answer a request (the caller's outcome), not failures of it. */
export const OUTCOME_CODES: ReadonlySet<number> = new Set([ZkCodes.NO_NODE, ZkCodes.NODE_EXISTS, ZkCodes.BAD_VERSION, ZkCodes.NOT_EMPTY, ZkCodes.NO_CHILDREN_FOR_EPHEMERALS]);

/**
 * Converts a ZooKeeper error code into the library's error: the one place the adapter does it.
 * Expected outcomes (NONODE, NODEEXISTS, BADVERSION) never reach here; callers turn them into
 * results. The `cause` is the code itself (a {@link ZooKeeperError}), unless the caller has the
 * error that produced it.
 */
export function convertCode(code: number, what: string, cause?: unknown): SharedStructError {
  const zkCause = cause ?? new ZooKeeperError(code, `${codeName(code)} (${code})`);
  const advice = ADVICE[code];
  const message = `${what}: ${describeCode(code)}${advice ? `; ${advice}` : ''}`;
  switch (code) {
    case ZkCodes.CONNECTION_LOSS:
      return new SharedStructError('CONNECTION', message, { cause: zkCause });
    case ZkCodes.SESSION_EXPIRED:
    case ZkCodes.SESSION_MOVED:
      return new SharedStructError('SESSION_LOST', message, { cause: zkCause });
    case ZkCodes.NO_AUTH:
    case ZkCodes.AUTH_FAILED:
    case ZkCodes.INVALID_ACL:
      return new SharedStructError('UNAUTHORIZED', message, { cause: zkCause });
    case ZkCodes.OPERATION_TIMEOUT:
      return new SharedStructError('TIMEOUT', message, { cause: zkCause });
    case ZkCodes.BAD_ARGUMENTS:
    case ZkCodes.NO_CHILDREN_FOR_EPHEMERALS:
    case ZkCodes.NOT_EMPTY:
      return new SharedStructError('INVALID_ARGUMENT', message, { cause: zkCause });
    case ZkCodes.THROTTLED:
    case ZkCodes.NOT_READ_ONLY:
      return new SharedStructError('CONNECTION', message, { cause: zkCause });
    default:
      return new SharedStructError('CONNECTION', message, { cause: zkCause, retryable: false });
  }
}

/**
 * One line for a log message: the error's message, its code, and its cause's code. Warnings print
 * this (a stack trace per reconnect buries the log); the whole error goes to `debug`.
 */
export function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as { code?: unknown }).code;
  const causeCode = err.cause instanceof Error ? (err.cause as { code?: unknown }).code : undefined;
  const cause = err.cause instanceof Error ? (typeof causeCode === 'string' ? causeCode : err.cause.message) : undefined;
  return `${err.message}${typeof code === 'string' ? ` [${code}]` : ''}${cause === undefined ? '' : ` (cause: ${cause})`}`;
}

/** Marks a `SESSION_LOST` whose request never left this client: it can go on the next session. */
export const NOT_SENT = Symbol('zookeeper.notSent');

/** The `SESSION_LOST` of a request that was never written to the socket. */
export function notSentError(op: string): SharedStructError {
  return new SharedStructError('SESSION_LOST', `${op}: the ZooKeeper session was lost before the request was sent`, {
    cause: new ZooKeeperError(ZkCodes.SESSION_EXPIRED, `${codeName(ZkCodes.SESSION_EXPIRED)} (${ZkCodes.SESSION_EXPIRED})`),
    details: { [NOT_SENT]: true },
  });
}

/** True when `err` is a request that was never sent because its session was lost first. */
export function wasNotSent(err: unknown): boolean {
  return err instanceof SharedStructError && typeof err.details === 'object' && err.details !== null && NOT_SENT in err.details;
}

/** A private code for packets failed by `abandon()` before they were written. */
export const CODE_NOT_SENT = -1_000_000;

/**
 * An error in the shape the library's packet callbacks expect (`getCode`/`getName`), built by us:
 * the library's `Exception.create` throws on codes it does not know (newer server codes, ours).
 */
export function libraryError(code: number, name = codeName(code), message = name): ZooKeeperError & ZkException {
  return Object.assign(new ZooKeeperError(code, message), { getCode: () => code, getName: () => name });
}
