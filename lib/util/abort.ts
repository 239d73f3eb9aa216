/** Deadlines and abort signals for calls that wait: one place, so no adapter leaks a timer. */
import { getEventListeners, setMaxListeners } from 'node:events';
import { SharedStructError, abortError } from '../errors.js';

/** Resolves after `ms`, or rejects `ABORTED` when the signal fires; the timer is unref'd. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal));
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortError(signal!));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    timer.unref?.();
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Requests that start within one window of the same timeout share one signal and one timer: an
 * `AbortSignal` costs microseconds to make (an EventTarget each), and a request that answers in
 * a fraction of a millisecond should not pay for its own. The window's signal fires
 * `timeoutMs + width` after the window opened, and only if a request of it is still pending: so
 * no request is cut before its own deadline, none later than `width` after it, and a window
 * whose requests all answered ends without firing.
 */
interface DeadlineWindow {
  readonly controller: AbortController;
  /** Until when (performance.now()) requests join this window. */
  readonly joinUntil: number;
  pending: number;
  timer: NodeJS.Timeout | undefined;
}

/** The window requests of each timeout join now (ms → window). */
const windows = new Map<number, DeadlineWindow>();

/** Every window whose timer is set: the joinable ones and the older ones still waiting to end. */
const live = new Set<DeadlineWindow>();

/** How late a deadline may fire: 2 % of the timeout, between 1 and 50 ms. */
function windowWidth(timeoutMs: number): number {
  return Math.min(50, Math.max(1, Math.floor(timeoutMs / 50)));
}

function joinWindow(timeoutMs: number): DeadlineWindow {
  const now = performance.now();
  let w = windows.get(timeoutMs);
  if (w === undefined || now >= w.joinUntil) {
    const width = windowWidth(timeoutMs);
    const opened: DeadlineWindow = { controller: new AbortController(), joinUntil: now + width, pending: 0, timer: undefined };
    // Every request of the window adds a listener and removes it when it settles.
    setMaxListeners(0, opened.controller.signal);
    opened.timer = setTimeout(() => {
      opened.timer = undefined;
      live.delete(opened);
      if (windows.get(timeoutMs) === opened) windows.delete(timeoutMs);
      if (opened.pending > 0) opened.controller.abort(new SharedStructError('TIMEOUT', `a request did not answer within ${timeoutMs} ms`));
    }, timeoutMs + width);
    opened.timer.unref?.();
    windows.set(timeoutMs, opened);
    live.add(opened);
    w = opened;
  }
  w.pending += 1;
  return w;
}

function leaveWindow(w: DeadlineWindow, timeoutMs: number): void {
  w.pending -= 1;
  // A window nobody can join any more and nobody waits in: its timer has nothing to cut.
  if (w.pending === 0 && windows.get(timeoutMs) !== w && w.timer !== undefined) {
    clearTimeout(w.timer);
    w.timer = undefined;
    live.delete(w);
  }
}

function timeoutError(what: string, timeoutMs: number): SharedStructError {
  return new SharedStructError('TIMEOUT', `${what} did not answer within ${timeoutMs} ms: the store is unreachable or overloaded (raise 'requestTimeoutMs' if it is only slow)`);
}

/**
 * Runs `fn` with a signal that fires when `signal` fires or `timeoutMs` passes. A deadline
 * rejects `TIMEOUT` naming `what`; the caller's abort rejects `ABORTED`. `fn` should pass the
 * signal down, but the race does not depend on it: a call that ignores it still rejects on time.
 *
 * Without a caller's `signal`, the signal `fn` gets is shared with the requests that started
 * within the same few milliseconds (see {@link DeadlineWindow}): the deadline may fire up to 2 %
 * (at most 50 ms) late, and the signal may fire after `fn` settled, for another request, so
 * nothing may act on it once `fn` has settled (remove its listeners, as every waiter here does).
 */
export function withDeadline<T>(
  what: string,
  timeoutMs: number,
  signal: AbortSignal | undefined,
  fn: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  if (signal?.aborted) return Promise.reject(abortError(signal));
  if (signal === undefined) return inWindow(what, timeoutMs, fn);
  const controller = new AbortController();
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      const err = timeoutError(what, timeoutMs);
      controller.abort(err);
      reject(err);
    }, timeoutMs);
    timer.unref?.();
    const onAbort = (): void => {
      const err = abortError(signal);
      controller.abort(err);
      reject(err);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    };
    settle(fn, controller.signal, done, resolve, reject);
  });
}

/** {@link withDeadline} without a caller's signal: on the shared window's signal. */
function inWindow<T>(what: string, timeoutMs: number, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const w = joinWindow(timeoutMs);
  const shared = w.controller.signal;
  return new Promise<T>((resolve, reject) => {
    // Added before `fn` runs, so it rejects before anything `fn` hung on the signal.
    const onTimeout = (): void => {
      w.pending -= 1;
      reject(timeoutError(what, timeoutMs));
    };
    shared.addEventListener('abort', onTimeout, { once: true });
    const done = (): void => {
      if (shared.aborted) return; // onTimeout ran and counted this request out
      shared.removeEventListener('abort', onTimeout);
      leaveWindow(w, timeoutMs);
    };
    settle(fn, shared, done, resolve, reject);
  });
}

/** Runs `fn(signal)` and settles with it after `done()`; a synchronous throw rejects. */
function settle<T>(fn: (signal: AbortSignal) => Promise<T>, signal: AbortSignal, done: () => void, resolve: (v: T) => void, reject: (e: unknown) => void): void {
  let work: Promise<T>;
  try {
    work = fn(signal);
  } catch (err) {
    done();
    reject(err);
    return;
  }
  work.then(
    (v) => {
      done();
      resolve(v);
    },
    (err: unknown) => {
      done();
      reject(err);
    },
  );
}

/** A signal that fires when any of `signals` fires (undefined ones ignored). */
export function anySignal(...signals: (AbortSignal | undefined)[]): AbortSignal {
  const present = signals.filter((s): s is AbortSignal => s !== undefined);
  if (present.length === 1) return present[0]!;
  return AbortSignal.any(present);
}

/**
 * The deadline windows whose timers are set (tests): how many, the requests pending in them, and the listeners
 * on their signals. With nothing in flight, `pending` and `listeners` are 0: a listener left
 * behind would fire when another request of its window times out.
 */
export function deadlineWindows(): { windows: number; pending: number; listeners: number } {
  let pending = 0;
  let listeners = 0;
  for (const w of live) {
    pending += w.pending;
    listeners += getEventListeners(w.controller.signal, 'abort').length;
  }
  return { windows: live.size, pending, listeners };
}
