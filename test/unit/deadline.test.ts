/**
 * withDeadline: requests without a caller's signal share one signal and one timer per window
 * (no AbortSignal made per request), and still never time out early, time out at most a window
 * late, and leave nothing behind.
 */
import assert from 'node:assert/strict';
import { deadlineWindows, withDeadline } from '../../lib/util/abort.js';
import { isSharedStructError } from '../../lib/errors.js';

const never = (signal: AbortSignal): Promise<never> =>
  new Promise((_, reject) => signal.addEventListener('abort', () => reject(new Error('inner saw the abort')), { once: true }));

describe('withDeadline', () => {
  it('requests that start together without a signal of their own share one signal', async () => {
    const seen: AbortSignal[] = [];
    await Promise.all([1, 2, 3].map((i) => withDeadline('x', 60_000, undefined, (s) => (seen.push(s), Promise.resolve(i)))));
    assert.equal(new Set(seen).size, 1);
    const { pending, listeners } = deadlineWindows();
    assert.deepEqual({ pending, listeners }, { pending: 0, listeners: 0 });
  });

  it('a caller signal gets its own signal, which its abort fires (ABORTED)', async () => {
    const caller = new AbortController();
    let inner: AbortSignal | undefined;
    const p = withDeadline('x', 60_000, caller.signal, (s) => ((inner = s), never(s)));
    caller.abort();
    await assert.rejects(p, (err) => isSharedStructError(err, 'ABORTED'));
    assert.equal(inner!.aborted, true);
  });

  it('times out no earlier than its own deadline and at most a window late, naming the request', async () => {
    const started = performance.now();
    let inner: AbortSignal | undefined;
    await assert.rejects(
      withDeadline('zookeeper get /a', 200, undefined, (s) => ((inner = s), never(s))),
      (err) => isSharedStructError(err, 'TIMEOUT') && /zookeeper get \/a did not answer within 200 ms/.test(err.message),
    );
    const took = performance.now() - started;
    assert.ok(took >= 199, `timed out after ${took} ms`);
    assert.ok(took < 200 + 4 + 100, `timed out after ${took} ms (window width 4 ms, plus timer slack)`);
    assert.equal(inner!.aborted, true, 'the signal fn got fired, so what it queued is cancelled');
  });

  it('a request that answered is not cut when another of its window times out; a window whose requests all answered never fires', async () => {
    let shared: AbortSignal | undefined;
    const quick = await withDeadline('quick', 150, undefined, (s) => ((shared = s), Promise.resolve('ok')));
    assert.equal(quick, 'ok');
    const slow = withDeadline('slow', 150, undefined, (s) => (assert.equal(s, shared, 'same window'), never(s)));
    await assert.rejects(slow, (err) => isSharedStructError(err, 'TIMEOUT'));
    // The next window: its only request answers, and its signal never fires.
    await new Promise((r) => setTimeout(r, 10));
    let later: AbortSignal | undefined;
    await withDeadline('later', 50, undefined, (s) => ((later = s), Promise.resolve()));
    await new Promise((r) => setTimeout(r, 120));
    assert.equal(later!.aborted, false);
  });

  it('a synchronous throw of fn rejects and leaves the window clean', async () => {
    await assert.rejects(
      withDeadline('x', 60_000, undefined, () => {
        throw new Error('sync');
      }),
      /sync/,
    );
    assert.equal(deadlineWindows().pending, 0);
    assert.equal(deadlineWindows().listeners, 0);
  });
});
