/**
 * Test-only seeded bugs: the fault matrix (issue 8) must catch each of them, which is how it
 * proves it can. Off unless a test turns one on; not exported from the package's entry point.
 * The switches live on `globalThis` under a registered symbol so every loaded copy of the
 * library sees them.
 */

/** The bugs a test can seed. */
export type SeededBug =
  /** `readConsistent()` answers from the cache without asking the store. */
  | 'cached-read'
  /** `read()` serves the cache however long ago it was confirmed (never `STALE_READ`). */
  | 'unchecked-staleness'
  /** `update()` compares against the store's version read just before writing, not the cache's: a CAS without its check. */
  | 'blind-cas'
  /** `client.lock()` grants the lock as soon as its key exists, without waiting for its turn. */
  | 'lock-without-queue'
  /**
   * A held lock ignores its session: no deadline from the last contact, no reaction to `lost`,
   * `held` checks nothing. The holder learns of the loss only when it sees its key deleted —
   * after the server freed the lock.
   */
  | 'lock-ignores-session';

const KEY = Symbol.for('sharedstruct.seededBugs');
const bugs = ((globalThis as Record<symbol, unknown>)[KEY] ??= new Set<SeededBug>()) as Set<SeededBug>;

/** Turns a seeded bug on or off (tests only). */
export function seedBug(bug: SeededBug, on = true): void {
  if (on) bugs.add(bug);
  else bugs.delete(bug);
}

/** @internal Whether `bug` is seeded. */
export function seeded(bug: SeededBug): boolean {
  return bugs.size > 0 && bugs.has(bug);
}
