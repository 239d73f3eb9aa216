/**
 * The suites were written against members whose `resume()` returns at once (SIGCONT is
 * synchronous); `sharedstruct/testing`'s returns a promise (a container's `docker unpause` is
 * not). For binaries the two are the same, so this adapter keeps the old shape.
 */

/** `T` with a `resume()` that returns nothing. */
export type SyncResume<T extends { resume(): Promise<void> }> = Omit<T, 'resume'> & { resume(): void };

/** A view of `member` whose `resume()` returns at once (binary members only: SIGCONT happens before it returns). */
export function syncResume<T extends { resume(): Promise<void> }>(member: T): SyncResume<T> {
  return new Proxy(member, {
    get(target, p) {
      if (p === 'resume') return () => void target.resume();
      const v = Reflect.get(target, p, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}
