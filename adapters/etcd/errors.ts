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
import { refusedTls, type EndpointState } from './channel.js';
import { tlsHint, tlsReason, type TlsServerTerms } from '../../lib/util/tls.js';

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
      // Our own deadline (or a conversion without the write's view): same code, the outcome
      // added. The original's cause is the cause; the original itself would only repeat this.
      return new SharedStructError(err.code, `${prefixed(what, err.message)}${UNKNOWN_OUTCOME}`, {
        ...(err.cause !== undefined && { cause: err.cause }),
        details: { outcome: 'unknown' },
      });
    }
    return err;
  }
  const message = grpcText(err);
  const unknownOutcome = kind === 'write' && !wasNotSent(err);
  const transport = (code: 'TIMEOUT' | 'CONNECTION', hint = ''): SharedStructError =>
    new SharedStructError(code, `${what}: ${message}${unknownOutcome ? UNKNOWN_OUTCOME : hint}`, {
      cause: err,
      ...(unknownOutcome && { details: { outcome: 'unknown' } }),
    });

  if (err instanceof ClientClosedError) return new SharedStructError('CLOSED', `${what}: the etcd client is closed`, { cause: err });
  if (
    err instanceof EtcdAuthenticationFailedError ||
    err instanceof EtcdPermissionDeniedError ||
    err instanceof EtcdInvalidAuthTokenError ||
    err instanceof EtcdUserNotFoundError ||
    err instanceof GRPCUnauthenticatedError ||
    /etcdserver: (user name is empty|authentication|permission denied|invalid auth)/.test(message)
  ) {
    const hint = /permission denied/.test(message)
      ? "; the user in option 'auth' lacks a role granting this key range"
      : "; check option 'auth' (username and password of an etcd user)";
    return new SharedStructError('UNAUTHORIZED', `${what}: ${message}${hint}`, { cause: err });
  }
  if (err instanceof EtcdLeaseInvalidError || /requested lease not found/.test(message)) {
    return new SharedStructError('SESSION_LOST', `${what}: the session's lease is gone (a new session follows)`, { cause: err });
  }
  // etcd's own limit answers "request is too large"; gRPC's (max-request-bytes + 512 KiB)
  // "received message larger than max".
  if (/request is too large|message larger than max/i.test(message)) {
    return new SharedStructError('VALUE_TOO_LARGE', `${what}: ${message}; the server's --max-request-bytes is smaller than this request (option 'maxValueBytes' tells the library the server's limit)`, { cause: err });
  }
  if (err instanceof GRPCResourceExhastedError || /database space exceeded/.test(message)) {
    // "too many requests" passes; a full database (NOSPACE alarm) needs an operator.
    if (/too many requests/.test(message)) return transport('CONNECTION', '; the server is overloaded, retry later');
    return new SharedStructError('CONNECTION', `${what}: ${message}; etcd is out of space: an operator must compact, defragment and disarm the NOSPACE alarm (etcdctl alarm disarm)`, {
      cause: err,
      retryable: false,
    });
  }
  if (err instanceof GRPCDeadlineExceededError || /deadline exceeded/i.test(message)) return transport('TIMEOUT');
  if (err instanceof GRPCOutOfRangeError || /required revision has been compacted/.test(message)) {
    // Only a range at an old revision says this (history): asking again cannot help.
    return new SharedStructError('CONNECTION', `${what}: ${message}`, { cause: err, retryable: false, details: { compacted: true } });
  }
  if (err instanceof GRPCInvalidArgumentError) return new SharedStructError('INVALID_ARGUMENT', `${what}: ${message}`, { cause: err });
  // Everything else is the transport or the cluster failing to answer (unavailable, cancelled,
  // internal, "no leader", "leader changed", "request timed out", a refused host, an error
  // etcd3 did not classify): CONNECTION, retryable, the outcome of a write unknown.
  if (/no leader/.test(message)) return transport('CONNECTION', '; the member has lost its quorum (are a majority of the members up?)');
  return transport('CONNECTION');
}

const UNKNOWN_OUTCOME = '; the write may or may not have been applied';

/** `what: message`, unless the message already starts with `what`. */
function prefixed(what: string, message: string): string {
  return message.startsWith(what) ? message : `${what}: ${message}`;
}

/**
 * gRPC's text without its noise: the numeric status in front ("14 UNAVAILABLE: ...", which etcd3
 * keeps from gRPC's message) and the empty "Resolution note:" it appends.
 */
function grpcText(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.replace(/^\d+ [A-Z_]+: /, '').replace(/\.? Resolution note: ?$/, '');
}

/**
 * The error of a `connect()` that reached no endpoint: what each endpoint did, and what to
 * check. `err` is how the first lease grant failed (its deadline, or the last refusal).
 */
export function unreachableError(
  endpoints: readonly EndpointState[],
  options: { readonly connectTimeoutMs: number; readonly tls: boolean },
  err: SharedStructError,
): SharedStructError {
  const { connectTimeoutMs } = options;
  const timedOut = err.code === 'TIMEOUT';
  const reports = endpoints.map((s) => describeEndpoint(s, options));
  const hints = [...new Set(reports.map((r) => r.hint).filter((h) => h !== ''))];
  const list = endpoints.map((s) => s.endpoint).join(',');
  const message =
    `could not connect to etcd at ${list}${timedOut ? ` within ${connectTimeoutMs} ms` : ''}: ` +
    `${reports.map((r) => r.text).join('; ')}. ${hints.join(' ')}`;
  // The cause: the error an endpoint failed with (the socket's own TLS error when there is
  // one), else how the call failed (its deadline).
  const failed = endpoints.find((s) => s.failure !== undefined && s.failure.kind !== 'other');
  const cause = failed ? (failed.failure!.kind === 'tls' && failed.tlsError ? failed.tlsError : failed.failure!.error) : (endpoints.find(refusedTls)?.tlsError ?? err.cause ?? err);
  return new SharedStructError('CONNECTION', message, {
    cause,
    details: { endpoints: reports.map(({ endpoint, status, text }) => ({ endpoint, status, message: text })) },
  });
}

/** How one endpoint failed, in words, and what to do about it. */
function describeEndpoint(
  s: EndpointState,
  { connectTimeoutMs, tls }: { readonly connectTimeoutMs: number; readonly tls: boolean },
): { endpoint: string; status: string; text: string; hint: string } {
  const ep = s.endpoint;
  const failure = s.failure;
  const result = (status: string, text: string, hint: string) => ({ endpoint: ep, status, text, hint });
  // A certificate refused after the handshake while a call waited for its deadline (etcd3's
  // token fetch with `auth`): the alert is why, not silence.
  if (refusedTls(s) && failure?.kind !== 'tls' && failure?.kind !== 'refused' && failure?.kind !== 'dns') {
    const reason = tlsReason(s.tlsError!);
    return result('tls', `the TLS handshake with ${ep} failed (${reason})`, tlsHint(reason, ETCD_TLS));
  }
  switch (failure?.kind) {
    case 'refused':
      return result('refused', `${ep} refused the connection (ECONNREFUSED)`, `Is etcd running at ${ep}? Check the URL.`);
    case 'dns':
      return result('unresolved', `${ep}: the host name did not resolve (${grpcText(failure.error)})`, 'Check the host names in the URL.');
    case 'tls': {
      const reason = (s.tlsError && tlsReason(s.tlsError)) ?? /TLS handshake with \S+ failed: (.*)/.exec(grpcText(failure.error))?.[1] ?? grpcText(failure.error);
      return result('tls', `the TLS handshake with ${ep} failed (${reason})`, tlsHint(reason, ETCD_TLS));
    }
    case 'other':
      if (s.connectedAt !== undefined && s.answeredAt === undefined) return silent(result, ep, connectTimeoutMs, tls);
      return result('failed', `${ep}: ${grpcText(failure.error)}`, `Check that etcd at ${ep} is healthy (etcdctl --endpoints=${ep} endpoint health).`);
    default:
      if (s.connectedAt !== undefined) return silent(result, ep, connectTimeoutMs, tls);
      if (s.triedAt === undefined) return result('untried', `${ep} was not tried (the call waited on another endpoint)`, '');
      return result('unreached', `${ep} did not accept a connection within ${connectTimeoutMs} ms`, `Check that ${ep} is reachable from here, or raise connectTimeoutMs.`);
  }
}

function silent<R>(result: (status: string, text: string, hint: string) => R, ep: string, connectTimeoutMs: number, tls: boolean): R {
  return result(
    'silent',
    `${ep} accepted the connection but did not answer within ${connectTimeoutMs} ms`,
    `Is the server frozen or overloaded, or is something between us dropping packets? Check it with etcdctl --endpoints=${ep} endpoint health.` +
      // A TLS server waits for a handshake that a plain-text client never starts: silence too.
      (tls ? '' : " If it serves TLS (https:// client URLs), pass option 'tls'."),
  );
}

/** How etcd is set up for TLS, for the hints. */
const ETCD_TLS: TlsServerTerms = { serving: 'an etcd started with --cert-file (https:// client URLs)', trustedCa: "the server's --trusted-ca-file" };
