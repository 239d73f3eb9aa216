/**
 * The backend's open watches: the set the session events and close() go through, key watches by
 * key (told of the backend's own writes as their replies are read, see {@link KeyWatch}), the
 * `keysOnly` prefix watches by prefix (a folder's head can come from their names), and the own
 * writes in flight per key. Apart from index.ts so that the backend's operations read as
 * requests; the watches themselves are watch.ts, key-watch.ts and prefix-watch.ts.
 */
import type { Entry, Watch, WatchOptions, WatchTarget } from '../../lib/backend.js';
import type { ZkConnection } from './connection.js';
import { KeyWatch } from './key-watch.js';
import { PrefixWatch } from './prefix-watch.js';
import type { SessionEvents } from './sessions.js';
import type { WatchHost, ZkWatch } from './watch.js';

/** What every watch of a backend shares; {@link OpenWatches} adds the rest of its {@link WatchHost}. */
export type SharedWatchHost = Omit<WatchHost, 'remove' | 'writesInFlight'>;

/** The open watches of one backend. */
export class OpenWatches implements SessionEvents {
  readonly #all = new Set<ZkWatch>();
  /** Per watch given a caller's signal: removes the listener on it. */
  readonly #detach = new Map<ZkWatch, () => void>();
  /** Key watches by key, told of this backend's own writes (see {@link KeyWatch.ownWrite}). */
  readonly #keyWatches = new Map<string, Set<KeyWatch>>();
  /** `keysOnly` prefix watches by prefix: `list` takes a folder's head from their names. */
  readonly #childWatches = new Map<string, Set<PrefixWatch>>();
  /** Own writes in flight per key: a key watch waits for their replies before it reads. */
  readonly #inflight = new Map<string, number>();

  /** Opens and starts a watch of `target` (checked by the caller). */
  open(target: WatchTarget, options: WatchOptions, shared: SharedWatchHost): Watch {
    const host: WatchHost = {
      ...shared,
      writesInFlight: (key) => this.writesInFlight(key),
      remove: (w) => {
        this.#all.delete(w);
        this.#detachWatch(w);
        const [map, key] = w instanceof KeyWatch ? [this.#keyWatches as Map<string, Set<ZkWatch>>, w.key] : [this.#childWatches as Map<string, Set<ZkWatch>>, (w as PrefixWatch).prefix];
        const set = map.get(key);
        set?.delete(w);
        if (set?.size === 0) map.delete(key);
      },
    };
    let watch: ZkWatch;
    if ('key' in target) {
      const keyWatch = new KeyWatch(host, target.key, options.afterRevision);
      const set = this.#keyWatches.get(target.key) ?? new Set<KeyWatch>();
      set.add(keyWatch);
      this.#keyWatches.set(target.key, set);
      watch = keyWatch;
    } else {
      const prefixWatch = new PrefixWatch(host, target.prefix, options.afterRevision, options.keysOnly === true);
      if (options.keysOnly) {
        const set = this.#childWatches.get(target.prefix) ?? new Set<PrefixWatch>();
        set.add(prefixWatch);
        this.#childWatches.set(target.prefix, set);
      }
      watch = prefixWatch;
    }
    this.#all.add(watch);
    const callerSignal = options.signal;
    if (callerSignal) {
      if (callerSignal.aborted) {
        watch.close();
      } else {
        // Removed when the watch ends by itself: callers pass long-lived signals (a lock wait's,
        // a struct's) to one watch after another.
        const onAbort = (): void => watch.close();
        callerSignal.addEventListener('abort', onAbort, { once: true });
        this.#detach.set(watch, () => callerSignal.removeEventListener('abort', onAbort));
      }
    }
    watch.start();
    return watch;
  }

  /** The session was lost: the server watches it held are gone. */
  lost(): void {
    for (const watch of this.#all) watch.sessionLost();
  }

  /** A new session is up: every watch re-arms and emits `reset`. */
  renewed(): void {
    for (const watch of this.#all) watch.sessionRenewed();
  }

  /** The backend closed: every watch ends with `CLOSED`. */
  closeAll(): void {
    for (const watch of [...this.#all]) {
      watch.backendClosed();
      this.#detachWatch(watch);
    }
    this.#all.clear();
  }

  /** Number of own writes of `key` in flight. */
  writesInFlight(key: string): number {
    return this.#inflight.get(key) ?? 0;
  }

  /** Runs a write of `keys`, counted in flight; when it settles, their key watches look again. */
  async writing<R>(keys: readonly string[], write: () => Promise<R>): Promise<R> {
    for (const k of keys) this.#inflight.set(k, (this.#inflight.get(k) ?? 0) + 1);
    try {
      return await write();
    } finally {
      for (const k of keys) {
        const left = this.#inflight.get(k)! - 1;
        if (left === 0) this.#inflight.delete(k);
        else this.#inflight.set(k, left);
        const watches = this.#keyWatches.get(k);
        if (watches) for (const w of watches) w.writeSettled();
      }
    }
  }

  /** Tells the key's watches of a write this backend committed on `conn` (as its reply is read). */
  ownWrite(conn: ZkConnection, entry: Entry): void {
    const watches = this.#keyWatches.get(entry.key);
    if (watches) for (const w of watches) w.ownWrite(conn, entry);
  }

  /** The children's names a live `keysOnly` watch of `prefix` holds on `conn`, if one does (see {@link PrefixWatch.namesOn}). */
  namesOn(prefix: string, conn: ZkConnection): readonly string[] | undefined {
    let names: readonly string[] | undefined;
    for (const w of this.#childWatches.get(prefix) ?? []) if ((names = w.namesOn(conn))) break;
    return names;
  }

  #detachWatch(watch: ZkWatch): void {
    this.#detach.get(watch)?.();
    this.#detach.delete(watch);
  }
}
