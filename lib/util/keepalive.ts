/**
 * What keeps a Node.js process alive: a call of ours that is pending, and nothing else.
 *
 * A user's script is a short process. While `connect()`, an `update()` in its backoff, a lock
 * wait or an iterator's `next()` is pending, the process must not exit (timers and sockets of
 * ours are unref'd, so without a hold the event loop could empty and Node would end the script
 * silently, status 13 under a top-level await). An idle client, with nothing pending, must not
 * hold the process either: its watch streams, keepalives and refresh timers run in the
 * background, like the daemon threads of Java's ZooKeeper client.
 *
 * One counter for the process: the question "is any call of ours pending?" is process-wide, and
 * one timer (ref'd while the count is above zero, unref'd otherwise) answers it at the cost of
 * two integer updates per call.
 */

let pending = 0;
let timer: NodeJS.Timeout | undefined;

function enter(): void {
  if (pending++ === 0) {
    // A timer far in the future that never fires: it only holds the loop while ref'd.
    if (timer === undefined) timer = setInterval(() => {}, 0x7fffffff);
    else timer.ref();
  }
}

function leave(): void {
  if (--pending === 0) timer?.unref();
}

/** Keeps the process alive until `work` settles; resolves or rejects as `work` does. */
export function hold<T>(work: Promise<T>): Promise<T> {
  enter();
  return work.finally(leave);
}

/** Runs `fn` and keeps the process alive until its promise settles (a synchronous throw rejects). */
export function holding<T>(fn: () => Promise<T>): Promise<T> {
  let work: Promise<T>;
  try {
    work = fn();
  } catch (err) {
    return Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
  return hold(work);
}

/** How many calls hold the process now (tests). */
export function pendingHolds(): number {
  return pending;
}
