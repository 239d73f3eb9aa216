/** The conversion of etcd3 / gRPC errors: a pure function, checked on the classes etcd3 produces. */
import assert from 'node:assert/strict';
import { castGrpcError, ClientClosedError, EtcdLeaseInvalidError } from 'etcd3';
import { HostDownError, toSharedError, wasNotSent } from '../../adapters/etcd/errors.js';
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
});
