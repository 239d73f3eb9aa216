/** The conversion of etcd3 / gRPC errors: a pure function, checked on the classes etcd3 produces. */
import assert from 'node:assert/strict';
import { castGrpcError, ClientClosedError, EtcdLeaseInvalidError } from 'etcd3';
import { HostDownError, toSharedError, unreachableError, wasNotSent } from '../../adapters/etcd/errors.js';
import { Endpoints } from '../../adapters/etcd/channel.js';
import { ErrorCodes } from '../../lib/errors.js';
import { SharedStructError } from '../../lib/errors.js';

/** A gRPC error as @grpc/grpc-js builds it, then cast by etcd3 as its calls do. */
function grpc(code: number, details: string): Error {
  return castGrpcError(Object.assign(new Error(`${code} ${details}`), { code, details }));
}

describe('etcd adapter: error conversion', () => {
  const cases: [string, Error, string, boolean][] = [
    ['deadline', grpc(4, 'DEADLINE_EXCEEDED: Deadline exceeded'), 'TIMEOUT', true],
    ['unavailable', grpc(14, 'UNAVAILABLE: read ECONNRESET'), 'CONNECTION', true],
    ['no leader', grpc(14, 'UNAVAILABLE: etcdserver: no leader'), 'CONNECTION', true],
    ['bad password', grpc(3, 'INVALID_ARGUMENT: etcdserver: authentication failed, invalid user ID or password'), 'UNAUTHORIZED', false],
    ['permission', grpc(7, 'PERMISSION_DENIED: etcdserver: permission denied'), 'UNAUTHORIZED', false],
    ['unauthenticated', grpc(16, 'UNAUTHENTICATED: no token'), 'UNAUTHORIZED', false],
    ['lease gone', grpc(5, 'NOT_FOUND: etcdserver: requested lease not found'), 'SESSION_LOST', true],
    ['too large (etcd)', grpc(3, 'INVALID_ARGUMENT: etcdserver: request is too large'), 'VALUE_TOO_LARGE', false],
    ['too large (gRPC)', grpc(8, 'RESOURCE_EXHAUSTED: Received message larger than max (2097400 vs 2097152)'), 'VALUE_TOO_LARGE', false],
    ['too many requests', grpc(8, 'RESOURCE_EXHAUSTED: etcdserver: too many requests'), 'CONNECTION', true],
    ['no space', grpc(8, 'RESOURCE_EXHAUSTED: etcdserver: mvcc: database space exceeded'), 'CONNECTION', false],
    ['duplicate key', grpc(3, 'INVALID_ARGUMENT: etcdserver: duplicate key given in txn request'), 'INVALID_ARGUMENT', false],
    ['closed', new ClientClosedError('KV'), 'CLOSED', false],
    ['lease class', new EtcdLeaseInvalidError('1'), 'SESSION_LOST', true],
    ['anything else', new Error('something odd'), 'CONNECTION', true],
  ];
  for (const [label, err, code, retryable] of cases) {
    it(`${label} → ${code}`, () => {
      const converted = toSharedError(err, 'etcd range /k');
      assert.ok(converted instanceof SharedStructError);
      assert.equal(converted.code, code);
      assert.equal(converted.retryable, retryable);
      assert.equal(converted.cause, err, 'the original is the cause');
      assert.match(converted.message, /etcd range \/k/);
    });
  }

  it('a write that lost its answer says its outcome is unknown; one never sent does not', () => {
    const lost = toSharedError(grpc(4, 'DEADLINE_EXCEEDED: Deadline exceeded'), 'etcd txn put /k', 'write');
    assert.deepEqual(lost.details, { outcome: 'unknown' });
    assert.match(lost.message, /may or may not have been applied/);
    assert.equal(lost.retryable, true);
    const notSent = grpc(14, 'UNAVAILABLE: No connection established. Last error: connect ECONNREFUSED 127.0.0.1:1');
    assert.equal(wasNotSent(notSent), true);
    assert.equal(toSharedError(notSent, 'etcd txn', 'write').details, undefined);
    assert.equal(wasNotSent(new HostDownError('127.0.0.1:1')), true);
    const ourTimeout = new SharedStructError('TIMEOUT', 'etcd txn did not answer within 5 ms');
    assert.deepEqual(toSharedError(ourTimeout, 'etcd txn', 'write').details, { outcome: 'unknown' });
    assert.equal(toSharedError(ourTimeout, 'etcd range', 'read'), ourTimeout, 'converted once, never twice');
  });

  it('messages read well: no code in front, the call named once, gRPC\'s status number dropped, the cause never a copy', () => {
    for (const [, err] of cases) {
      const converted = toSharedError(err, 'etcd range /k', 'write');
      assert.ok(!ErrorCodes.some((code) => converted.message.startsWith(`${code}:`)), converted.message);
      assert.equal(converted.message.split('etcd range /k').length, 2, `the call named once: ${converted.message}`);
      assert.doesNotMatch(converted.message, /\b\d+ [A-Z_]+: |Resolution note/, converted.message);
      assert.ok(!(converted.cause instanceof SharedStructError), 'the cause is the client\'s error');
    }
    // Our own deadline, seen by the write path: the outcome is added, the call not repeated, and
    // the original (which says the same) is not made the cause.
    const ourTimeout = new SharedStructError('TIMEOUT', 'etcd txn put /k did not answer within 5 ms');
    const wrapped = toSharedError(ourTimeout, 'etcd txn put /k', 'write');
    assert.equal(wrapped.message, 'etcd txn put /k did not answer within 5 ms; the write may or may not have been applied');
    assert.equal(wrapped.cause, undefined);
  });

  it('messages say what to do where there is something to do', () => {
    const hint = (err: Error): string => toSharedError(err, 'etcd txn put /k').message;
    assert.match(hint(grpc(3, 'INVALID_ARGUMENT: etcdserver: authentication failed, invalid user ID or password')), /check option 'auth'/);
    assert.match(hint(grpc(7, 'PERMISSION_DENIED: etcdserver: permission denied')), /lacks a role granting this key range/);
    assert.match(hint(grpc(3, 'INVALID_ARGUMENT: etcdserver: request is too large')), /--max-request-bytes .*'maxValueBytes'/);
    assert.match(hint(grpc(8, 'RESOURCE_EXHAUSTED: etcdserver: mvcc: database space exceeded')), /compact, defragment and disarm the NOSPACE alarm/);
    assert.match(hint(grpc(14, 'UNAVAILABLE: etcdserver: no leader')), /lost its quorum/);
  });

  it('connect() reaching no endpoint: what each endpoint did, what to check, the endpoint\'s own error as the cause', () => {
    const endpoints = new Endpoints(['127.0.0.1:1', '127.0.0.1:2', '127.0.0.1:3']);
    const refused = grpc(14, 'UNAVAILABLE: No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:1. Resolution note: ');
    endpoints.tried('127.0.0.1:1');
    endpoints.failed('127.0.0.1:1', refused);
    endpoints.tried('127.0.0.1:2');
    endpoints.of('127.0.0.1:2')!.connectedAt = Date.now();
    const deadline = new SharedStructError('TIMEOUT', 'etcd leaseGrant did not answer within 800 ms');
    const err = unreachableError(endpoints.all, { connectTimeoutMs: 800, tls: false }, deadline);
    assert.equal(err.code, 'CONNECTION');
    assert.equal(
      err.message,
      'could not connect to etcd at 127.0.0.1:1,127.0.0.1:2,127.0.0.1:3 within 800 ms: 127.0.0.1:1 refused the connection (ECONNREFUSED); ' +
        '127.0.0.1:2 accepted the connection but did not answer within 800 ms; 127.0.0.1:3 was not tried (the call waited on another endpoint). ' +
        'Is etcd running at 127.0.0.1:1? Check the URL. Is the server frozen or overloaded, or is something between us dropping packets? ' +
        "Check it with etcdctl --endpoints=127.0.0.1:2 endpoint health. If it serves TLS (https:// client URLs), pass option 'tls'.",
    );
    assert.equal(err.cause, refused);
    assert.deepEqual((err.details as { endpoints: { status: string }[] }).endpoints.map((e) => e.status), ['refused', 'silent', 'untried']);
  });
});
