/** How errors read: the code is `err.code` (and in the stack's first line), never repeated in the message. */
import assert from 'node:assert/strict';
import { ErrorCodes, SharedStructError, connect, isSharedStructError } from '../../lib/index.js';
import { describeError, describeFields } from '../../lib/util/describe.js';

describe('errors read well', () => {
  it('the message does not repeat the code; `${code}: ${message}` prints the code once', () => {
    for (const code of ErrorCodes) {
      const err = new SharedStructError(code, 'something happened; do this');
      assert.equal(err.message, 'something happened; do this');
      assert.equal(`${err.code}: ${err.message}`, `${code}: something happened; do this`);
      assert.equal(err.name, 'SharedStructError');
      assert.equal(String(err), 'SharedStructError: something happened; do this');
      assert.equal(err.stack?.split('\n')[0], `SharedStructError [${code}]: something happened; do this`);
    }
  });

  it('keeps the real cause, and instanceof works', () => {
    const cause = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
    const err = new SharedStructError('CONNECTION', 'cannot reach the store', { cause });
    assert.equal(err.cause, cause);
    assert.ok(err instanceof SharedStructError && err instanceof Error);
    assert.ok(isSharedStructError(err, 'CONNECTION'));
  });

  it('errors from the library carry no code in their message (a sample of paths)', async () => {
    const caught: unknown[] = [];
    await connect('nope://x').catch((e: unknown) => caught.push(e));
    await connect('memory://', { sessionTtlMs: 5 }).catch((e: unknown) => caught.push(e));
    const client = await connect(`memory://errors-${process.pid}`);
    await client.open('missing').catch((e: unknown) => caught.push(e));
    const s = await client.open<{ n: number }>('s', { initial: { n: 0 } });
    await s.compareAndSet(99, { n: 1 }).catch((e: unknown) => caught.push(e));
    await s.update(() => ({ n: new Date() }) as never).catch((e: unknown) => caught.push(e));
    await client.close();
    await client.open('s').catch((e: unknown) => caught.push(e));
    assert.equal(caught.length, 6);
    for (const err of caught) {
      assert.ok(err instanceof SharedStructError, String(err));
      assert.ok(!err.message.startsWith(`${err.code}`), `message repeats the code: ${err.message}`);
      assert.ok(!/^[A-Z_]{4,}: /.test(err.message), `message starts with a code: ${err.message}`);
    }
    assert.deepEqual(
      caught.map((e) => (e as SharedStructError).code),
      ['INVALID_ARGUMENT', 'INVALID_ARGUMENT', 'NOT_FOUND', 'CONFLICT', 'INVALID_VALUE', 'CLOSED'],
    );
  });

  it('log lines describe errors on one line', () => {
    const err = new SharedStructError('TIMEOUT', 'etcd get /k did not answer within 5 ms', { cause: new Error('deadline') });
    assert.equal(describeError(err), 'TIMEOUT: etcd get /k did not answer within 5 ms');
    assert.equal(describeFields({ err, attempt: 2, key: '/k', skip: undefined }), ' err=TIMEOUT: etcd get /k did not answer within 5 ms attempt=2 key=/k');
    assert.ok(!describeFields({ err }).includes('\n'));
  });
});
