/**
 * The FIFO queue under locks and elections: each contender creates an ephemeral sequential key
 * under a parent, the one with the smallest create revision holds, and every other contender
 * watches only its predecessor (no herd). A {@link QueueSlot} owns its key for the key's whole
 * life: it waits its turn, watches for the loss of what it holds, and deletes the key — once the
 * store answers, even when that is later — whenever it lets go: released, resigned, withdrawn or
 * lost. A slot that let go never leaves its key to block the queue.
 */
import type { Backend, Entry, SessionStateChange } from './backend.js';
import { SharedStructError, abortError, throwIfAborted } from './errors.js';
import { jsonCodec } from './codec.js';
import { isRetryable, retry } from './retry.js';

/**
 * How long before the server can expire a suspended session a holder gives up: 20% of the
 * session ttl, at least 250 ms. It covers the gap between the server's last-heard time and ours
 * (at most one round trip) and timer drift.
 */
export function safetyMarginMs(ttlMs: number): number {
  return Math.max(250, Math.round(ttlMs * 0.2));
}

/** What watches over a held slot: see {@link QueueSlot.hold}. */
export interface LossMonitor {
  /** Aborted with `LOCK_LOST` as soon as the slot's key may be gone. */
  readonly signal: AbortSignal;
  /**
   * Checks the loss deadline now, without waiting for a timer (a process that was frozen runs its
   * own code before any timer can tell it the news); true while still held.
   */
  check(): boolean;
}

/** One contender's place in a queue, from its creation to its delete. */
export class QueueSlot {
  /** The key this slot owns. */
  readonly key: string;
  /** Create revision of the key: the fencing token. */
  readonly token: bigint;
  /** The session epoch the key belongs to (it vanishes with that session). */
  readonly epoch: number;
  readonly #backend: Backend;
  readonly #parent: string;
  /** The key's version when created: a delete is conditional on it (and on its create revision). */
  readonly #version: number;
  /** The key's revision when created: its watch starts there, so a delete before it started is seen. */
  readonly #revision: bigint;
  /** The key was seen deleted (or replaced by another life): there is nothing of ours to delete. */
  #gone = false;
  #released: Promise<void> | undefined;
  #stopMonitor: (() => void) | undefined;

  /** The name can be created again by another contender once this key is gone: deletes compare the key's life. */
  readonly #sharedName: boolean;

  /**
   * @internal Use {@link QueueSlot.enqueue} (tests adopt an entry they made). `sharedName`: the
   * key's name is not unique to this slot (a claim is named after its message), so its delete
   * is conditional on this life of the key (etcd and memory compare the create revision).
   */
  constructor(backend: Backend, parent: string, entry: Entry, epoch: number, options: { readonly sharedName?: boolean } = {}) {
    this.#sharedName = options.sharedName === true;
    this.#backend = backend;
    this.#parent = parent;
    this.key = entry.key;
    this.token = entry.createRevision;
    this.epoch = epoch;
    this.#version = entry.version;
    this.#revision = entry.revision;
  }

  /**
   * Creates a key at the end of the queue under `parent`. The create is not aborted once sent (a
   * create aborted in flight may still happen and leave a key nobody owns); when `signal` fired
   * meanwhile, the new key is deleted and this rejects. When the create's outcome is unknown (a
   * timeout), the queue is searched for `record` (unique per contender) and any key found deleted.
   */
  static async enqueue(backend: Backend, parent: string, record: unknown, signal: AbortSignal | undefined): Promise<QueueSlot> {
    throwIfAborted(signal);
    const epoch = backend.session.epoch;
    const bytes = jsonCodec.encode(record);
    let created;
    try {
      created = await backend.create(`${parent}/q-`, bytes, { ephemeral: true, sequential: true });
    } catch (err) {
      if (isRetryable(err)) await removeStray(backend, parent, bytes);
      throw err;
    }
    if (!created.created) throw new SharedStructError('CONFLICT', `a sequential key under '${parent}' already existed`);
    const slot = new QueueSlot(backend, parent, created.entry, epoch);
    if (signal?.aborted) {
      await slot.release();
      throw abortError(signal);
    }
    return slot;
  }

  /**
   * Waits until this slot heads the queue. Each round lists the queue; if someone is ahead, it
   * watches that predecessor until it is deleted, then lists again. Rejects `SESSION_LOST` if the
   * key vanished (its session ended), and the signal's error when it fires.
   */
  async waitForHead(signal: AbortSignal): Promise<void> {
    for (;;) {
      throwIfAborted(signal);
      const entries = await this.#backend.list(this.#parent, { signal });
      const index = entries.findIndex((e) => e.key === this.key);
      if (index < 0) throw new SharedStructError('SESSION_LOST', `queue entry '${this.key}' is gone (its session ended)`);
      if (index === 0) return;
      await waitForDelete(this.#backend, entries[index - 1]!, signal);
    }
  }

  /**
   * Starts watching over what this slot holds and returns the monitor: its signal aborts with
   * `LOCK_LOST` as soon as the key may be gone (the session is lost or replaced, the server has
   * not been heard from for so long that it may expire the session within the safety margin, or
   * the key was deleted), and then the slot lets go of its key ({@link release}).
   */
  hold(what: string): LossMonitor {
    const backend = this.#backend;
    const controller = new AbortController();
    const session = backend.session;
    const margin = safetyMarginMs(session.ttlMs);
    let timer: NodeJS.Timeout | undefined;
    const watchStop = new AbortController();
    const stop = (): void => {
      clearTimeout(timer);
      unsubscribe();
      watchStop.abort();
    };
    const lose = (why: string, cause?: unknown): void => {
      if (controller.signal.aborted) return;
      controller.abort(new SharedStructError('LOCK_LOST', `${what}: ${why}`, { cause }));
      stop();
      void this.release();
    };
    /**
     * One timer at the loss deadline, last contact + ttl - margin, whatever the session's state:
     * an adapter may notice a dead connection late (etcd's keepalive checks run once per third
     * of the ttl), and the server's clock runs from the last request it got either way. When it
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
    const check = (): boolean => {
      if (!controller.signal.aborted && Date.now() > session.lastContactAt + session.ttlMs - margin) {
        lose(`the server was last heard ${Date.now() - session.lastContactAt} ms ago; it may have expired the session (ttl ${session.ttlMs} ms, margin ${margin} ms)`);
      }
      return !controller.signal.aborted;
    };
    const unsubscribe = session.onStateChange((change: SessionStateChange) => {
      if (change.epoch !== this.epoch || change.state === 'lost' || change.state === 'closed') {
        lose(`the session was ${change.state === 'closed' ? 'closed' : 'lost'}`, change.cause);
      }
    });
    this.#stopMonitor = stop;
    // The key itself: deleted by hand, or by the server on expiry we have not heard of yet.
    const watch = backend.watch({ key: this.key }, { signal: watchStop.signal, afterRevision: this.#revision });
    void (async () => {
      try {
        for await (const ev of watch) {
          const deleted =
            ev.type === 'delete' ||
            (ev.type === 'put' && ev.entry.createRevision !== this.token) ||
            (ev.type === 'reset' && !ev.entries.some((e) => e.key === this.key && e.createRevision === this.token));
          if (deleted) {
            // Not ours any more: a key of that name now may be another contender's (a claim).
            this.#gone = true;
            lose(`its key '${this.key}' was deleted`);
            return;
          }
        }
      } catch {
        // The watch ended with the backend; session monitoring still applies.
      } finally {
        watch.close();
      }
    })();
    if (session.epoch !== this.epoch || session.state === 'lost' || session.state === 'closed') lose('the session was lost');
    // A deadline already past (contact lost while the contender waited) is lost now, so a caller
    // that checks the signal right away does not hand out what is gone.
    else if (check()) armDeadline();
    return { signal: controller.signal, check };
  }

  /**
   * Lets go: stops the monitor and deletes this slot's own key (never another's). Idempotent.
   * Resolves once the store answered the first delete; when it could not be reached, it resolves
   * anyway and keeps deleting in the background until the delete goes through or the key's
   * session ends (Curator's "guaranteed delete"): a key left behind would hold the queue for as
   * long as its session lives. Rejects only on an error that retrying cannot fix.
   */
  release(): Promise<void> {
    this.#released ??= this.#delete();
    return this.#released;
  }

  async #delete(): Promise<void> {
    this.#stopMonitor?.();
    const backend = this.#backend;
    const sessionHolds = (): boolean => {
      const s = backend.session;
      return s.epoch === this.epoch && s.state !== 'lost' && s.state !== 'closed';
    };
    // A key seen deleted, or of a session that is gone, is not ours to delete: its name may
    // already be another contender's (claims are named after their message). The key is
    // ephemeral; it went, or goes, with its session. Checked again before each retry.
    const once = async (): Promise<void> => {
      if (this.#gone || !sessionHolds()) return;
      if (this.#sharedName && backend.features.has('txn')) {
        // Only this life of the key (etcd and memory compare its create revision).
        await backend.txn({ compare: [{ key: this.key, version: this.#version, createRevision: this.token }], ops: [{ op: 'delete', key: this.key }] });
      } else {
        await backend.delete(this.key);
      }
    };
    try {
      await once();
    } catch (err) {
      // The key is ephemeral: with its session gone, it is gone.
      if (err instanceof SharedStructError && (err.code === 'CLOSED' || err.code === 'SESSION_LOST')) return;
      if (!isRetryable(err)) throw err;
      // Bounded: two ttls and a minute, by when an unreachable session has long expired.
      void retry(once, {
        what: `delete of queue key '${this.key}'`,
        giveUpAt: Date.now() + 2 * backend.session.ttlMs + 60_000,
        retryIf: (e) => isRetryable(e) && sessionHolds(),
      }).catch(() => {});
    }
  }
}

/** After a create whose outcome is unknown: deletes any key under `parent` holding exactly `bytes`. */
async function removeStray(backend: Backend, parent: string, bytes: Uint8Array): Promise<void> {
  try {
    for (const e of await backend.list(parent)) {
      if (e.value.byteLength === bytes.byteLength && Buffer.compare(e.value, bytes) === 0) await backend.delete(e.key);
    }
  } catch {
    // Still unreachable: the key, if any, goes with our session; the caller reports the first error.
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
