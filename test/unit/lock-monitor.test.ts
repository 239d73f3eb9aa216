/**
 * The loss monitor under held locks and leaders (lib/queue.ts `monitorLoss`), driven by a real
 * SessionTracker and a watch that never reports anything: what the holder learns from the
 * session alone.
 */
import assert from 'node:assert/strict';
import type { Backend, Watch, WatchEvent } from '../../lib/backend.js';
import { monitorLoss, safetyMarginMs, type QueueEntry } from '../../lib/queue.js';
import { SessionTracker } from '../../lib/util/session.js';
import { sleep } from '../support/process.js';

/** A watch that stays silent until closed. */
function silentWatch(signal?: AbortSignal): Watch {
  let close: () => void = () => {};
  const closed = new Promise<void>((resolve) => (close = resolve));
  signal?.addEventListener('abort', () => close(), { once: true });
  return {
    close: () => close(),
    [Symbol.asyncIterator](): AsyncIterator<WatchEvent> {
      return {
        next: async (): Promise<IteratorResult<WatchEvent>> => {
          await closed;
          return { done: true, value: undefined };
        },
      };
    },
  };
}

function fakeBackend(session: SessionTracker): Backend {
  return { session, watch: (_t: unknown, o?: { signal?: AbortSignal }) => silentWatch(o?.signal) } as unknown as Backend;
}

const entry = (epoch: number): QueueEntry => ({ key: '/ns/_locks/x/q-1', token: 7n, epoch });

describe('lock loss monitor', () => {
  it('a session replaced before monitoring starts: the signal is aborted, nothing throws', () => {
    const session = new SessionTracker('s1', 2000);
    session.transition('lost');
    session.transition('reconnected', { newSessionId: 's2' });
    const monitor = monitorLoss(fakeBackend(session), entry(1), 'lock x');
    assert.equal(monitor.signal.aborted, true);
    assert.equal((monitor.signal.reason as { code?: string }).code, 'LOCK_LOST');
    assert.equal(monitor.check(), false);
    monitor.stop();
  });

  it('aborts at last contact + ttl - margin even when the session never says suspended', async () => {
    const ttl = 1000;
    const session = new SessionTracker('s1', ttl);
    const heardAt = session.lastContactAt;
    const monitor = monitorLoss(fakeBackend(session), entry(1), 'lock x');
    try {
      const abortedAt = await Promise.race([
        new Promise<number>((resolve) => monitor.signal.addEventListener('abort', () => resolve(Date.now()), { once: true })),
        sleep(3 * ttl).then(() => Number.NaN),
      ]);
      assert.ok(!Number.isNaN(abortedAt), `not aborted within ${3 * ttl} ms of the last contact`);
      const after = abortedAt - heardAt;
      const budget = ttl - safetyMarginMs(ttl);
      assert.equal(session.state, 'connected', 'the adapter never reported a problem');
      assert.ok(after >= budget && after <= budget + 150, `aborted ${after} ms after the last contact; the deadline is ${budget} ms`);
    } finally {
      monitor.stop();
    }
  });

  it('contact that keeps coming keeps the lock', async () => {
    const session = new SessionTracker('s1', 1000);
    const monitor = monitorLoss(fakeBackend(session), entry(1), 'lock x');
    try {
      for (let i = 0; i < 15; i++) {
        await sleep(100);
        session.touch();
      }
      assert.equal(monitor.signal.aborted, false);
      assert.equal(monitor.check(), true);
    } finally {
      monitor.stop();
    }
  });
});
