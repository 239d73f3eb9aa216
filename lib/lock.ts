/** Distributed locks: FIFO, blocking, with a fencing token and a signal that tells when it is lost. */
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import type { Backend } from './backend.js';
import { SharedStructError, abortError, throwIfAborted } from './errors.js';
import { anySignal, sleep } from './util/abort.js';
import { enqueue, monitorLoss, waitForHead, type QueueEntry } from './queue.js';

/** Options of `client.lock()`. */
export interface LockOptions {
  /**
   * How long the lock survives its holder being unreachable: the ttl of the session it lives on.
   * Default: the client's `sessionTtlMs`. A different value puts the lock on a session of its
   * own (one more connection per distinct ttl, opened on first use and closed with the client).
   */
  readonly ttlMs?: number;
  /** Give up with `LOCK_TIMEOUT` after waiting this long (default: wait until `signal`). */
  readonly waitMs?: number;
  readonly signal?: AbortSignal;
}

/**
 * A held lock. Do the guarded work while `signal` is not aborted, and pass `token` to every
 * resource you write so it can refuse a stale holder (see docs/LOCKS.md).
 *
 * @example
 * ```ts
 * await using lock = await client.lock('daily-report', { waitMs: 5000 });
 * await storage.write(report, { fencingToken: lock.token, signal: lock.signal });
 * ```
 */
export class Lock implements AsyncDisposable {
  /** The lock's name. */
  readonly name: string;
  /**
   * Fencing token: a decimal string that strictly grows from one holder to the next (etcd: the
   * create revision of the lock key; ZooKeeper: its czxid). Compare as BigInt.
   */
  readonly token: string;
  /** Aborted with `LOCK_LOST` as soon as the lock may be gone (never by `release()`). */
  readonly signal: AbortSignal;
  /** @internal The queue key this holder owns. */
  readonly key: string;
  readonly #backend: Backend;
  readonly #stop: () => void;
  readonly #check: () => boolean;
  readonly #epoch: number;
  #released = false;

  /** @internal */
  constructor(name: string, backend: Backend, entry: QueueEntry, monitor: { signal: AbortSignal; stop(): void; check(): boolean }) {
    this.name = name;
    this.token = entry.token.toString();
    this.key = entry.key;
    this.#epoch = entry.epoch;
    this.signal = monitor.signal;
    this.#backend = backend;
    this.#stop = () => monitor.stop();
    this.#check = () => monitor.check();
  }

  /**
   * True until released or lost. Checks the loss deadline on the spot (and aborts `signal` if it
   * passed), so code that resumes after a freeze learns the truth before it acts: test it right
   * before each guarded step.
   */
  get held(): boolean {
    return !this.#released && this.#check();
  }

  /**
   * Deletes this holder's own key (never another holder's) and stops watching. Idempotent. When
   * the store cannot be reached it resolves anyway and keeps deleting in the background until
   * the delete goes through or the key's session ends (Curator's "guaranteed delete"): a key
   * left behind would keep the lock for as long as its session lives, and a failed release must
   * not hide why the holder let go (`withLock`, `updateLocked` release in `finally`).
   */
  async release(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    this.#stop();
    try {
      await this.#backend.delete(this.key);
    } catch (err) {
      // The key is ephemeral: with its session gone, it is gone.
      if (err instanceof SharedStructError && (err.code === 'CLOSED' || err.code === 'SESSION_LOST')) return;
      if (!(err instanceof SharedStructError && err.retryable)) throw err;
      void deleteUntilGone(this.#backend, this.key, this.#epoch);
    }
  }

  /** Same as {@link release}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }
}

/**
 * Retries deleting the queue key `key` of session `epoch` with backoff until the delete goes
 * through or that session ends (the key goes with it). Bounded: two ttls and a minute at most,
 * by when an unreachable session has long expired on the server.
 */
async function deleteUntilGone(backend: Backend, key: string, epoch: number): Promise<void> {
  const giveUpAt = Date.now() + 2 * backend.session.ttlMs + 60_000;
  for (let attempt = 1; Date.now() < giveUpAt; attempt++) {
    await sleep(Math.min(2000, 50 * 2 ** attempt));
    const session = backend.session;
    if (session.epoch !== epoch || session.state === 'lost' || session.state === 'closed') return;
    try {
      await backend.delete(key);
      return;
    } catch (err) {
      if (!(err instanceof SharedStructError && err.retryable)) return;
    }
  }
}

/** @internal Acquires `name` under `parent` on `backend` (FIFO; each waiter watches its predecessor). */
export async function acquireLock(backend: Backend, name: string, parent: string, options: LockOptions): Promise<Lock> {
  const { waitMs, signal } = options;
  if (waitMs !== undefined && (!Number.isInteger(waitMs) || waitMs < 0)) {
    throw new SharedStructError('INVALID_ARGUMENT', `option 'waitMs' must be an integer >= 0, got ${String(waitMs)}`);
  }
  throwIfAborted(signal);
  const deadline = waitMs === undefined ? undefined : AbortSignal.timeout(Math.max(1, waitMs));
  const wait = anySignal(signal, deadline);
  for (;;) {
    const me = await enqueue(backend, parent, { id: randomUUID(), host: hostname(), pid: process.pid, since: Date.now(), ttlMs: backend.session.ttlMs }, wait);
    try {
      await waitForHead(backend, parent, me, wait);
      const monitor = monitorLoss(backend, me, `lock '${name}'`);
      if (monitor.signal.aborted) throw abortError(monitor.signal);
      return new Lock(name, backend, me, monitor);
    } catch (err) {
      await backend.delete(me.key).catch(() => {});
      if (signal?.aborted) throw abortError(signal);
      if (deadline?.aborted) throw new SharedStructError('LOCK_TIMEOUT', `lock '${name}' not acquired within ${waitMs} ms`, { cause: err });
      // Our queue key went with a lost session: queue again, at the end.
      if (err instanceof SharedStructError && (err.code === 'SESSION_LOST' || err.code === 'LOCK_LOST')) continue;
      throw err;
    }
  }
}
