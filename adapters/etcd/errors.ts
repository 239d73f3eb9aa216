/**
 * The one place where etcd3 / gRPC errors become {@link SharedStructError}s. etcd3 turns gRPC
 * status codes into classes (`castGrpcError`) but keeps neither `code` nor `cause`, so this
 * matches on its classes first and on the server's `etcdserver:` messages second.
 */
import {
  ClientClosedError,
  EtcdAuthenticationFailedError,
  EtcdInvalidAuthTokenError,
  EtcdLeaseInvalidError,
  EtcdPermissionDeniedError,
  EtcdUserNotFoundError,
  GRPCDeadlineExceededError,
  GRPCInvalidArgumentError,
  GRPCResourceExhastedError,
  GRPCUnauthenticatedError,
  GRPCOutOfRangeError,
} from 'etcd3';
import { SharedStructError, isSharedStructError } from '../../lib/errors.js';

/** Whether a call changes the store: decides what a lost answer means. */
export type CallKind = 'read' | 'write';

/** Refusal of an endpoint that failed recently (see `hostGate` in rpc.ts): nothing was sent. */
export class HostDownError extends Error {
  override readonly name = 'HostDownError';
  constructor(host: string) {
    super(`etcd endpoint ${host} failed recently and is passed over`);
  }
}

/**
 * gRPC fails a call with these texts when it never left the client: no connection was up to
 * send it on (fail-fast pick), or its channel was closed while it waited for one. Such a call
 * may be retried even when it is a write.
 */
export function wasNotSent(err: unknown): boolean {
  if (err instanceof HostDownError) return true;
  return err instanceof Error && /No connection established|Channel closed before call started/.test(err.message);
}

/**
 * Converts anything an etcd call threw into a {@link SharedStructError}, once. `what` names
 * the call (`etcd txn /ns/a/payload`). A write whose answer was lost (deadline, broken
 * connection) may or may not have been applied: the error says so in its message and in
 * `details.outcome = 'unknown'`, and stays retryable because every write of this adapter is a
 * compare-and-set that a retry re-checks.
 */
export function toSharedError(err: unknown, what: string, kind: CallKind = 'read'): SharedStructError {
  if (isSharedStructError(err)) {
    if (kind === 'write' && (err.code === 'TIMEOUT' || err.code === 'CONNECTION') && err.details === undefined) {
      return new SharedStructError(err.code, `${what}: ${stripCode(err.message)}; the write may or may not have been applied`, {
        cause: err.cause ?? err,
        details: { outcome: 'unknown' },
      });
    }
    return err;
  }
  const message = err instanceof Error ? err.message : String(err);
  const unknownOutcome = kind === 'write' && !wasNotSent(err);
  const transport = (code: 'TIMEOUT' | 'CONNECTION'): SharedStructError =>
    new SharedStructError(
      code,
      `${what}: ${message}${unknownOutcome ? '; the write may or may not have been applied' : ''}`,
      { cause: err, ...(unknownOutcome && { details: { outcome: 'unknown' } }) },
    );

  if (err instanceof ClientClosedError) return new SharedStructError('CLOSED', `${what}: the etcd client is closed`, { cause: err });
  if (
    err instanceof EtcdAuthenticationFailedError ||
    err instanceof EtcdPermissionDeniedError ||
    err instanceof EtcdInvalidAuthTokenError ||
    err instanceof EtcdUserNotFoundError ||
    err instanceof GRPCUnauthenticatedError ||
    /etcdserver: (user name is empty|authentication|permission denied|invalid auth)/.test(message)
  ) {
    return new SharedStructError('UNAUTHORIZED', `${what}: ${message}`, { cause: err });
  }
  if (err instanceof EtcdLeaseInvalidError || /requested lease not found/.test(message)) {
    return new SharedStructError('SESSION_LOST', `${what}: the session's lease is gone`, { cause: err });
  }
  // etcd's own limit answers "request is too large"; gRPC's (max-request-bytes + 512 KiB)
  // "received message larger than max".
  if (/request is too large|message larger than max/i.test(message)) {
    return new SharedStructError('VALUE_TOO_LARGE', `${what}: ${message}`, { cause: err });
  }
  if (err instanceof GRPCResourceExhastedError || /database space exceeded/.test(message)) {
    // "too many requests" passes; a full database (NOSPACE alarm) needs an operator.
    if (/too many requests/.test(message)) return transport('CONNECTION');
    return new SharedStructError('CONNECTION', `${what}: ${message}`, { cause: err, retryable: false });
  }
  if (err instanceof GRPCDeadlineExceededError || /deadline exceeded/i.test(message)) return transport('TIMEOUT');
  if (err instanceof GRPCOutOfRangeError || /required revision has been compacted/.test(message)) {
    // Only a range at an old revision says this; this adapter never sends one.
    return new SharedStructError('CONNECTION', `${what}: ${message}`, { cause: err });
  }
  if (err instanceof GRPCInvalidArgumentError) return new SharedStructError('INVALID_ARGUMENT', `${what}: ${message}`, { cause: err });
  // Everything else is the transport or the cluster failing to answer (unavailable, cancelled,
  // internal, "no leader", "leader changed", "request timed out", a refused host, an error
  // etcd3 did not classify): CONNECTION, retryable, the outcome of a write unknown.
  return transport('CONNECTION');
}

function stripCode(message: string): string {
  return message.replace(/^[A-Z_]+: /, '');
}
