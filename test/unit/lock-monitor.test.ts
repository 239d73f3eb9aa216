/**
 * The loss monitor under held locks and leaders (lib/queue.ts `QueueSlot.hold`), driven by a
 * real SessionTracker and a watch that never reports anything: what the holder learns from the
 * session alone, and that a slot that lost what it held lets go of its key.
 */
import assert from 'node:assert/strict';
import type { Backend, Entry, Watch, WatchEvent } from '../../lib/backend.js';
import { QueueSlot, safetyMarginMs } from '../../lib/queue.js';
import { SessionTracker } from '../../lib/util/session.js';
import { sleep } from '../support/process.js';
import { connect } from '../../lib/index.js';
import { backendOf } from '../../lib/client.js';
import { memoryBackendOf } from '../memory/target.js';

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

/** A backend with a session, silent watches, and deletes that are recorded. */
function fakeBackend(session: SessionTracker): Backend & { deleted: string[] } {
  const deleted: string[] = [];
  return {
    session,
    deleted,
    features: new Set(),
    watch: (_t: unknown, o?: { signal?: AbortSignal }) => silentWatch(o?.signal),
    delete: (key: string) => {
      deleted.push(key);
      return Promise.resolve(true);
    },
  } as unknown as Backend & { deleted: string[] };
}

const KEY = '/ns/_locks/x/q-1';
const entry: Entry = { key: KEY, value: new Uint8Array(), version: 1, revision: 7n, createRevision: 7n, ephemeral: true };
const monitorOf = (backend: Backend, epoch: number) => {
  const slot = new QueueSlot(backend, '/ns/_locks/x', entry, epoch);
  return { ...slot.hold('lock x'), stop: () => void slot.release() };
};

describe('lock loss monitor', () => {
  it('a session replaced before monitoring starts: the signal is aborted, nothing throws', () => {
    const session = new SessionTracker('s1', 2000);
    session.transition('lost');
    session.transition('reconnected', { newSessionId: 's2' });
    const monitor = monitorOf(fakeBackend(session), 1);
    assert.equal(monitor.signal.aborted, true);
    assert.equal((monitor.signal.reason as { code?: string }).code, 'LOCK_LOST');
    assert.equal(monitor.check(), false);
    monitor.stop();
  });

  it('a deadline already past when monitoring starts: the signal is aborted at once, not a timer later', async () => {
    // The fault matrix (etcd, near-expiry blip, election): a candidate whose keepalives were lost
    // reached the head of the queue on answered lists, and campaign() resolved a leadership whose
    // `held` was false 1 ms later. Its "lost before it began" check looks at the signal right away.
    const ttl = 300;
    const session = new SessionTracker('s1', ttl);
    await sleep(ttl - safetyMarginMs(ttl) + 50);
    const monitor = monitorOf(fakeBackend(session), 1);
    assert.equal(monitor.signal.aborted, true, 'the loss deadline had passed, yet the signal was not aborted');
    assert.equal((monitor.signal.reason as { code?: string }).code, 'LOCK_LOST');
    monitor.stop();
  });

  it('aborts at last contact + ttl - margin even when the session never says suspended', async () => {
    const ttl = 1000;
    const session = new SessionTracker('s1', ttl);
    const heardAt = session.lastContactAt;
    const monitor = monitorOf(fakeBackend(session), 1);
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
    const monitor = monitorOf(fakeBackend(session), 1);
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

  it('a slot that loses what it holds deletes its own key, once, without being asked', async () => {
    const ttl = 1000;
    const session = new SessionTracker('s1', ttl);
    const backend = fakeBackend(session);
    const slot = new QueueSlot(backend, '/ns/_locks/x', entry, 1);
    const monitor = slot.hold('leadership of e');
    await new Promise<void>((resolve) => monitor.signal.addEventListener('abort', () => resolve(), { once: true }));
    await sleep(10);
    assert.deepEqual(backend.deleted, [KEY], 'the lost slot let go of its key');
    await slot.release();
    assert.deepEqual(backend.deleted, [KEY], 'release after a loss deletes nothing more');
  });

  it('a slot of a session that was replaced deletes nothing: its key went with that session, and the name may be another\'s', async () => {
    const session = new SessionTracker('s1', 2000);
    const backend = fakeBackend(session);
    const slot = new QueueSlot(backend, '/ns/_locks/x', entry, 1);
    const monitor = slot.hold('claim of m');
    session.transition('lost');
    session.transition('reconnected', { newSessionId: 's2' });
    assert.equal(monitor.signal.aborted, true);
    await slot.release();
    await sleep(10);
    assert.deepEqual(backend.deleted, []);
  });

  it('a slot whose key was deleted and then created by another contender never deletes the newcomer\'s key (claims reuse names)', async () => {
    const url = `memory://lock-monitor-${Date.now()}`;
    await using a = await connect(url);
    await using b = await connect(url);
    const ba = backendOf(a);
    const bb = backendOf(b);
    const key = `${a.namespace}/srv/claims/m-1`;
    const mine = await ba.create(key, new Uint8Array([1]), { ephemeral: true });
    assert.ok(mine.created);
    const slot = new QueueSlot(ba, `${a.namespace}/srv/claims`, mine.entry, ba.session.epoch, { sharedName: true });
    const monitor = slot.hold('claim of m-1');
    // A hears of it late (as a client does when the server ended its session), after B claimed.
    memoryBackendOf(a).delayDelivery(50);
    // Someone takes it away (as a server-side expiry would) and a second consumer claims it.
    await bb.delete(key);
    const theirs = await bb.create(key, new Uint8Array([2]), { ephemeral: true });
    assert.ok(theirs.created);
    if (!monitor.signal.aborted) await new Promise<void>((resolve) => monitor.signal.addEventListener('abort', () => resolve(), { once: true }));
    await slot.release();
    await sleep(20);
    const now = await bb.get(key, { consistent: true });
    assert.ok(now, 'the newcomer\'s claim was deleted by the slot that had lost it');
    assert.equal(now.createRevision, theirs.entry.createRevision);
  });
});
