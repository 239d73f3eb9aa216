/**
 * The FIFO queue under locks and elections: each contender creates an ephemeral sequential key
 * under a parent, the one with the smallest create revision holds, and every other contender
 * watches only its predecessor (no herd). Plus the loss monitor that tells a holder, in time,
 * that its key may be gone.
 */
import type { Backend, Entry, SessionStateChange } from './backend.js';
import { SharedStructError, throwIfAborted } from './errors.js';
import { jsonCodec } from './codec.js';

/**
 * How long before the server can expire a suspended session a holder gives up: 20% of the
 * session ttl, at least 250 ms. It covers the gap between the server's last-heard time and ours
 * (at most one round trip) and timer drift.
 */
export function safetyMarginMs(ttlMs: number): number {
  return Math.max(250, Math.round(ttlMs * 0.2));
}

/** One contender's place in a queue. */
export interface QueueEntry {
  readonly key: string;
  /** Create revision of the key: the fencing token. */
  readonly token: bigint;
  /** The session epoch the key belongs to. */
  readonly epoch: number;
}

/** Creates this contender's key at the end of the queue under `parent`. */
export async function enqueue(backend: Backend, parent: string, record: unknown, signal?: AbortSignal): Promise<QueueEntry> {
  throwIfAborted(signal);
  const epoch = backend.session.epoch;
  const r = await backend.create(`${parent}/q-`, jsonCodec.encode(record), { ephemeral: true, sequential: true, signal });
  if (!r.created) throw new SharedStructError('CONFLICT', `a sequential key under '${parent}' already existed`);
  return { key: r.entry.key, token: r.entry.createRevision, epoch };
}

/**
 * Waits until `me` heads the queue. Each round lists the queue; if someone is ahead, it watches
 * that predecessor until it is deleted, then lists again. Rejects `SESSION_LOST` if `me` vanished
 * (its session ended), and the signal's error when it fires.
 */
export async function waitForHead(backend: Backend, parent: string, me: QueueEntry, signal: AbortSignal): Promise<void> {
  for (;;) {
    throwIfAborted(signal);
    const entries = await backend.list(parent, { signal });
    const index = entries.findIndex((e) => e.key === me.key);
    if (index < 0) throw new SharedStructError('SESSION_LOST', `queue entry '${me.key}' is gone (its session ended)`);
    if (index === 0) return;
    await waitForDelete(backend, entries[index - 1]!, signal);
  }
}

/** Resolves once `entry` is deleted (from its revision on, so a delete in between is not missed). */
async function waitForDelete(backend: Backend, entry: Entry, signal: AbortSignal): Promise<void> {
  const watch = backend.watch({ key: entry.key }, { afterRevision: entry.revision, signal });
  try {
    for await (const ev of watch) {
      if (ev.type === 'delete') return;
      if (ev.type === 'reset' && !ev.entries.some((e) => e.key === entry.key)) return;
      if (ev.type === 'put' && ev.entry.createRevision !== entry.createRevision) return;
    }
    throwIfAborted(signal);
  } finally {
    watch.close();
  }
}

/**
 * Watches over a held queue key and aborts the returned signal with `LOCK_LOST` as soon as the
 * key may be gone: the session is lost or replaced, the server has not been heard from for so
 * long that it may expire the session within the safety margin, or the key was deleted.
 */
export function monitorLoss(
  backend: Backend,
  me: QueueEntry,
  what: string,
): { readonly signal: AbortSignal; stop(): void; check(): boolean } {
  const controller = new AbortController();
  const session = backend.session;
  const margin = safetyMarginMs(session.ttlMs);
  let timer: NodeJS.Timeout | undefined;
  const lose = (why: string, cause?: unknown): void => {
    if (controller.signal.aborted) return;
    controller.abort(new SharedStructError('LOCK_LOST', `${what}: ${why}`, { cause }));
    stop();
  };
  /**
   * One timer at the loss deadline, last contact + ttl - margin, whatever the session's state:
   * an adapter may notice a dead connection late (etcd's keepalive checks run once per third of
   * the ttl), and the server's clock runs from the last request it got either way. When it
   * fires early because contact came since, it moves to the new deadline.
   */
  const armDeadline = (): void => {
    clearTimeout(timer);
    const deadline = session.lastContactAt + session.ttlMs - margin;
    timer = setTimeout(() => {
      if (check()) armDeadline();
    }, Math.max(0, deadline - Date.now()) + 1);
    timer.unref();
  };
  const onState = (change: SessionStateChange): void => {
    if (change.epoch !== me.epoch || change.state === 'lost' || change.state === 'closed') {
      lose(`the session was ${change.state === 'closed' ? 'closed' : 'lost'}`, change.cause);
    }
  };
  const unsubscribe = session.onStateChange(onState);
  // The key itself: deleted by hand, or by the server on expiry we have not heard of yet.
  const watchStop = new AbortController();
  const watch = backend.watch({ key: me.key }, { signal: watchStop.signal });
  void (async () => {
    try {
      for await (const ev of watch) {
        if (ev.type === 'delete' || (ev.type === 'reset' && !ev.entries.some((e) => e.key === me.key))) {
          lose(`its key '${me.key}' was deleted`);
          return;
        }
      }
    } catch {
      // The watch ended with the backend; session monitoring still applies.
    }
  })();
  // Only now: `lose` stops the watch, so the watch must exist before the first check can lose.
  if (session.epoch !== me.epoch || session.state === 'lost' || session.state === 'closed') lose('the session was lost');
  else armDeadline();
  function stop(): void {
    clearTimeout(timer);
    unsubscribe();
    watchStop.abort();
    watch.close();
  }
  /**
   * Checks the deadline now, without waiting for a timer: a process that was frozen (SIGSTOP, a
   * long GC pause) runs its own code before any timer can tell it the news.
   */
  function check(): boolean {
    if (!controller.signal.aborted && Date.now() > session.lastContactAt + session.ttlMs - margin) {
      lose(`the server was last heard ${Date.now() - session.lastContactAt} ms ago; it may have expired the session (ttl ${session.ttlMs} ms, margin ${margin} ms)`);
    }
    return !controller.signal.aborted;
  }
  return { signal: controller.signal, stop, check };
}
