/**
 * The watch on the direct children of a prefix (see {@link PrefixWatch}): a persistent
 * `children` watch for `keysOnly` where the server has one, else one-shot child and data watches.
 */
import type { WatchEvent } from '../../lib/backend.js';
import type { ZkConnection } from './connection.js';
import { BaseWatch, NO_VALUE, diffEntry, toKnown, type Known, type WatchHost } from './watch.js';
import type { ZkEvent } from './zk-client.js';

/**
 * A watch on the direct children of a prefix. With `keysOnly` on ZooKeeper >= 3.6 it holds a
 * persistent `children` watch on the parent: every join and leave is notified with the child's
 * name, so the watch emits it without any request (a one-shot child watch costs a re-arming
 * `getChildren` per change). It lists only to start, after a reconnect or a new session, and on
 * older servers it uses one-shot watches.
 *
 * Exact without reading, because on one session the server sends a change's notification before
 * the reply of any read that follows the change: notifications that come before a listing's
 * reply are in the listing (ignored), those after it are applied on top of it (held until the
 * listing is applied). Applying a join or leave is idempotent, so a relist after events is safe.
 */
export class PrefixWatch extends BaseWatch {
  /** The prefix watched. */
  readonly prefix: string;
  readonly #prefix: string;
  readonly #base: string;
  #known = new Map<string, Known>();
  /** Children whose data watch fired. */
  readonly #dirtyChildren = new Set<string>();
  /** The child list changed (or must be read for the first time). */
  #childrenDirty = true;
  readonly #childWatcher = (_event: ZkEvent): void => {
    this.#childrenDirty = true;
    this.wake();
  };
  readonly #dataWatchers = new Map<string, (event: ZkEvent) => void>();
  /**
   * Names only (`keysOnly`): children are listed, never read, and no data watch is set, so a
   * child's value changes are not reported; joins and leaves are, with entries that carry no
   * value (version and revisions 0).
   */
  readonly #keysOnly: boolean;
  /** The session holding our persistent `children` watch (keysOnly on >= 3.6). */
  #childrenOn: ZkConnection | undefined;
  /** The server has no `addWatch` (or the path has a watch of the other mode): one-shot watches. */
  #noPersistent = false;
  /** The names must be listed again (a reconnect re-added the watch: joins in between were not told). */
  #mustList = true;
  /** A listing was sent and its reply has not come: notifications now are in it. */
  #listing = false;
  /** Notifications after a listing's reply, applied once the listing is. */
  #afterListing: { readonly type: number; readonly name: string }[] | undefined;
  readonly #onChildren = (type: number, path: string): void => {
    if (type === 0) {
      this.#mustList = true;
      this.wake();
      return;
    }
    const base = this.host.reads.pathOf(this.#prefix);
    // The parent's own changes: its deletion comes after its children's, its data is not ours.
    if (path === base || (type !== 1 && type !== 2)) return;
    const name = path.slice(base === '/' ? 1 : base.length + 1);
    if (this.#listing || this.closed) return;
    if (this.#afterListing) this.#afterListing.push({ type, name });
    else if (!this.#mustList && !this.first && !this.needReset) this.#applyChild(type, name);
  };

  constructor(host: WatchHost, prefix: string, afterRevision: bigint | undefined, keysOnly = false) {
    super(host, afterRevision);
    this.prefix = prefix;
    this.#prefix = prefix;
    this.#base = prefix === '/' ? '' : prefix;
    this.#keysOnly = keysOnly;
  }

  #dataWatcher(name: string): (event: ZkEvent) => void {
    let watcher = this.#dataWatchers.get(name);
    if (!watcher) {
      watcher = () => {
        this.#dirtyChildren.add(name);
        this.wake();
      };
      this.#dataWatchers.set(name, watcher);
    }
    return watcher;
  }

  protected async sync(conn: ZkConnection, signal: AbortSignal): Promise<void> {
    if (this.#keysOnly && !this.#noPersistent) {
      if (this.#childrenOn !== conn) {
        const path = this.host.reads.pathOf(this.#prefix);
        this.#mustList = true;
        if (await this.io(signal, (s) => conn.addPersistentWatch(path, this.#onChildren, s, 'children'))) {
          this.#childrenOn = conn;
        } else {
          this.#noPersistent = true;
          this.host.logger.debug('zookeeper: no persistent children watch for this prefix, using one-shot watches', { prefix: this.#prefix });
        }
      }
      if (!this.#noPersistent) {
        if (!this.#mustList && !this.first && !this.needReset) return;
        return this.#listOnce(conn, signal);
      }
    }
    const full = this.first || this.needReset;
    const dirty = new Set(this.#dirtyChildren);
    this.#dirtyChildren.clear();
    const relist = full || this.#childrenDirty;
    this.#childrenDirty = false;
    try {
      if (relist) await this.io(signal, (s) => this.#relist(conn, s, full, dirty));
      else await this.io(signal, (s) => this.#reread(conn, s, dirty));
    } catch (err) {
      // Nothing of this round was applied: ask for the same work again.
      if (relist) this.#childrenDirty = true;
      for (const name of dirty) this.#dirtyChildren.add(name);
      throw err;
    }
  }

  /** Lists the names under the persistent `children` watch, then applies what was notified after the reply. */
  async #listOnce(conn: ZkConnection, signal: AbortSignal): Promise<void> {
    this.#mustList = false;
    this.#listing = true;
    try {
      await this.io(signal, (s) => this.#relist(conn, s, this.first || this.needReset, new Set(), true));
    } catch (err) {
      this.#mustList = true;
      throw err;
    } finally {
      this.#listing = false;
      const after = this.#afterListing ?? [];
      this.#afterListing = undefined;
      if (!this.#mustList && !this.closed) for (const { type, name } of after) this.#applyChild(type, name);
    }
  }

  /**
   * @internal The children's names as of the last notification read on `conn`, when the
   * persistent children watch there is live and caught up; else undefined.
   */
  namesOn(conn: ZkConnection): string[] | undefined {
    if (this.closed || conn.dead || this.#childrenOn !== conn || this.armedOn !== conn) return undefined;
    if (this.first || this.needReset || this.#mustList || this.#listing || this.#afterListing) return undefined;
    return [...this.#known.keys()];
  }

  /** A join (1) or leave (2) told by the persistent watch. */
  #applyChild(type: number, name: string): void {
    const key = `${this.#base}/${name}`;
    if (type === 1 && !this.#known.has(name)) {
      this.#known.set(name, { version: 0, createRevision: 0n });
      this.emit({ type: 'put', entry: { key, value: NO_VALUE, version: 0, revision: 0n, createRevision: 0n, ephemeral: false } });
    } else if (type === 2 && this.#known.delete(name)) {
      this.emit({ type: 'delete', key, revision: 0n });
    }
  }

  async #relist(conn: ZkConnection, signal: AbortSignal, full: boolean, dirty: Set<string>, persistent = false): Promise<void> {
    const known = this.#known;
    const listing = await this.host.reads.readChildren(
      conn,
      this.#prefix,
      persistent ? undefined : this.#childWatcher,
      (name) => (this.#keysOnly ? undefined : this.#dataWatcher(name)),
      signal,
      {
        needsRead: (name) => full || !known.has(name) || dirty.has(name),
        keysOnly: this.#keysOnly,
        // The persistent watch's listing is the watch's read, counted like a re-arming one.
        ...(persistent && {
          counted: 'watchGetChildren',
          onReply: () => {
            this.#listing = false;
            this.#afterListing = [];
          },
        }),
      },
    );
    if (this.closed) return;
    const read = new Map(listing.entries.map((e) => [e.key.slice(this.#base.length + 1), e]));
    if (full) {
      const reset = this.needReset;
      this.needReset = false;
      this.first = false;
      this.#known = new Map([...read].map(([name, e]) => [name, toKnown(e)]));
      if (reset) {
        this.emit({ type: 'reset', entries: listing.entries, revision: listing.zxid });
        return;
      }
      const after = this.afterRevision;
      if (after === undefined) return;
      if (listing.pzxid > after) {
        // Children were created or deleted since `after`: which ones went is not knowable.
        this.emit({ type: 'reset', entries: listing.entries, revision: listing.zxid });
      } else {
        for (const entry of listing.entries) if (entry.revision > after) this.emit({ type: 'put', entry });
      }
      return;
    }
    const events: WatchEvent[] = [];
    const listed = new Set(listing.names);
    const next = new Map<string, Known>();
    for (const name of listing.names) {
      const entry = read.get(name);
      const previous = known.get(name);
      if (!entry) {
        const wasRead = !previous || dirty.has(name);
        // Unchanged (not read again), or vanished between the list and the read.
        if (previous && !wasRead) next.set(name, previous);
        else if (previous) events.push({ type: 'delete', key: `${this.#base}/${name}`, revision: listing.zxid });
        continue;
      }
      const d = diffEntry(entry.key, previous, entry, listing.zxid);
      events.push(...d.events);
      if (d.known) next.set(name, d.known);
    }
    for (const [name] of known) {
      if (!listed.has(name)) {
        events.push({ type: 'delete', key: `${this.#base}/${name}`, revision: listing.zxid });
        this.#dataWatchers.delete(name);
      }
    }
    this.#known = next;
    this.#emitOrdered(events);
  }

  async #reread(conn: ZkConnection, signal: AbortSignal, dirty: Set<string>): Promise<void> {
    const names = [...dirty].filter((name) => this.#known.has(name));
    const reads = await Promise.all(
      names.map((name) => this.host.reads.readData(conn, `${this.#base}/${name}`, this.#dataWatcher(name), signal)),
    );
    if (this.closed) return;
    const events: WatchEvent[] = [];
    names.forEach((name, i) => {
      const { entry, zxid } = reads[i]!;
      const d = diffEntry(`${this.#base}/${name}`, this.#known.get(name), entry, zxid);
      events.push(...d.events);
      if (d.known) {
        this.#known.set(name, d.known);
      } else {
        this.#known.delete(name);
        this.#dataWatchers.delete(name);
      }
    });
    this.#emitOrdered(events);
  }

  /** Emits in revision order, so a consumer folding the events sees the store's order. */
  #emitOrdered(events: WatchEvent[]): void {
    const rev = (e: WatchEvent): bigint => (e.type === 'put' ? e.entry.revision : e.type === 'delete' ? e.revision : 0n);
    events.sort((a, b) => (rev(a) < rev(b) ? -1 : rev(a) > rev(b) ? 1 : 0));
    for (const event of events) this.emit(event);
  }

  protected describe(): string {
    return `prefix ${this.#prefix}`;
  }

  protected unregister(conn: ZkConnection): void {
    const reads = this.host.reads;
    conn.unregister(reads.pathOf(this.#prefix), this.#childWatcher);
    conn.removePersistentWatch(reads.pathOf(this.#prefix), this.#onChildren);
    for (const [name, watcher] of this.#dataWatchers) conn.unregister(reads.pathOf(`${this.#base}/${name}`), watcher);
  }
}
