/** Distributed locks: FIFO, blocking, with a fencing token and a signal that tells when it is lost. */
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import type { Backend } from './backend.js';
import { SharedStructError, abortError, throwIfAborted } from './errors.js';
import { anySignal } from './util/abort.js';
import { QueueSlot, type LossMonitor } from './queue.js';
import { holding } from './util/keepalive.js';

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
  readonly #slot: QueueSlot;
  readonly #monitor: LossMonitor;
  #released = false;
  /** Told once when the hold ends: released (false) or lost (true). */
  #onEnd: ((lost: boolean) => void) | undefined;

  /** @internal */
  constructor(name: string, slot: QueueSlot, monitor: LossMonitor) {
    this.name = name;
    this.token = slot.token.toString();
    this.key = slot.key;
    this.signal = monitor.signal;
    this.#slot = slot;
    this.#monitor = monitor;
    monitor.signal.addEventListener('abort', () => this.#ended(true), { once: true });
  }

  /** @internal Calls `fn` once when the hold ends (telemetry). */
  onEnd(fn: (lost: boolean) => void): void {
    this.#onEnd = fn;
  }

  #ended(lost: boolean): void {
    const fn = this.#onEnd;
    this.#onEnd = undefined;
    // A loss noticed after release() is not a loss of the holder's.
    if (fn && !(lost && this.#released)) fn(lost);
  }

  /**
   * True until released or lost. Checks the loss deadline on the spot (and aborts `signal` if it
   * passed), so code that resumes after a freeze learns the truth before it acts: test it right
   * before each guarded step.
   */
  get held(): boolean {
    return !this.#released && this.#monitor.check();
  }

  /**
   * Deletes this holder's own key (never another holder's) and stops watching. Idempotent. When
   * the store cannot be reached it resolves anyway and keeps deleting in the background until
   * the delete goes through or the key's session ends (Curator's "guaranteed delete"): a key
   * left behind would keep the lock for as long as its session lives, and a failed release must
   * not hide why the holder let go (`withLock`, `updateLocked` release in `finally`). A lost
   * lock has already let go of its key the same way.
   */
  release(): Promise<void> {
    if (!this.#released) {
      this.#released = true;
      if (!this.signal.aborted) this.#ended(false);
    }
    return holding(() => this.#slot.release());
  }

  /** Same as {@link release}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.release();
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
  const record = { id: randomUUID(), host: hostname(), pid: process.pid, since: Date.now(), ttlMs: backend.session.ttlMs };
  for (;;) {
    let slot: QueueSlot | undefined;
    try {
      slot = await QueueSlot.enqueue(backend, parent, record, wait);
      await slot.waitForHead(wait);
      const monitor = slot.hold(`lock '${name}'`);
      if (monitor.signal.aborted) throw abortError(monitor.signal);
      return new Lock(name, slot, monitor);
    } catch (err) {
      await slot?.release().catch(() => {});
      if (signal?.aborted) throw abortError(signal);
      if (deadline?.aborted) {
        throw new SharedStructError('LOCK_TIMEOUT', `lock '${name}' was not acquired within ${waitMs} ms: another holder has it; wait longer (waitMs) or find who holds it`, { cause: err });
      }
      // Our queue key went with a lost session: queue again, at the end.
      if (err instanceof SharedStructError && (err.code === 'SESSION_LOST' || err.code === 'LOCK_LOST')) continue;
      throw err;
    }
  }
}
