/**
 * The adapter's errors read well (issue 12): the message says what happened and, where there is
 * something to do, what; it does not start with the code (the stack and `code` carry it); the
 * `cause` is what really went wrong (the server's code, the socket error), never the error itself.
 */
import assert from 'node:assert/strict';
import { ErrorCodes, SharedStructError } from '../../lib/errors.js';
import { ZooKeeperError } from '../../adapters/zookeeper/errors.js';
import { freePort } from '../support/process.js';
import { bytes, closeAll, openBackend, uniquePrefix } from './helpers.js';

/** Rejects with a SharedStructError of `code` and hands it over. */
async function rejection(promise: Promise<unknown>, code: string): Promise<SharedStructError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof SharedStructError, `not a SharedStructError: ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return err;
  }
  throw new Error(`resolved; expected ${code}`);
}

function readsWell(err: SharedStructError): void {
  for (const code of ErrorCodes) assert.ok(!err.message.startsWith(`${code}:`), `message starts with its code: ${err.message}`);
  assert.notEqual(err.cause, err, 'the cause is the error itself');
  if (err.cause instanceof Error) assert.notEqual(err.cause.message, err.message, 'the cause repeats the message');
}

describe('zookeeper adapter: error messages', function () {
  this.timeout(30000);
  afterEach(() => closeAll());

  it("a node another identity created: UNAUTHORIZED that names the auth option, the server's code as cause", async () => {
    const prefix = uniquePrefix('errors-auth');
    const key = `${prefix}/payload`;
    // The ancestors first, open to all: created by alice they would be hers alone (CREATOR_ALL_ACL).
    await (await openBackend()).create(`${prefix}/open`, bytes(''));
    const alice = await openBackend({ overrides: { auth: { username: 'alice', password: 'secret' } } });
    const mallory = await openBackend({ overrides: { auth: { username: 'mallory', password: 'guess' } } });
    await alice.create(key, bytes('private'));
    const err = await rejection(mallory.get(key), 'UNAUTHORIZED');
    readsWell(err);
    assert.match(err.message, new RegExp(`^getData ${key}: ZooKeeper answered NO_AUTH; .*connect with the \`auth\` that created it`));
    assert.ok(err.cause instanceof ZooKeeperError);
    assert.equal(err.cause.code, -102);
  });

  it('a refused connection: CONNECTION with the socket error as cause and what to check', async () => {
    const port = await freePort();
    const err = await rejection(openBackend({ hosts: [`127.0.0.1:${port}`] }), 'CONNECTION');
    readsWell(err);
    assert.equal((err.cause as NodeJS.ErrnoException).code, 'ECONNREFUSED');
    assert.match(err.message, /Check the URL/);
  });

  it('what cannot work says what to do instead (tls to a plain-text server, an oversized value)', async () => {
    const tls = await rejection(openBackend({ overrides: { tls: {}, connectTimeoutMs: 10000 } }), 'CONNECTION');
    readsWell(tls);
    assert.match(tls.message, /Is this endpoint serving TLS\? Use option 'tls' only with a ZooKeeper server's secureClientPort/);
    const b = await openBackend({ overrides: { maxValueBytes: 10 } });
    const big = await rejection(b.create(`${uniquePrefix('errors-big')}/k`, new Uint8Array(11)), 'VALUE_TOO_LARGE');
    readsWell(big);
    assert.match(big.message, /11 bytes; the limit is 10 .*pass maxValueBytes/);
  });

  it('a key with children cannot be deleted: INVALID_ARGUMENT that says so', async () => {
    const b = await openBackend();
    const parent = `${uniquePrefix('errors-notempty')}/dir`;
    await b.create(`${parent}/child`, bytes('1'));
    const err = await rejection(b.delete(parent), 'INVALID_ARGUMENT');
    readsWell(err);
    assert.match(err.message, /NOT_EMPTY; the key has children: delete them first/);
  });
});
