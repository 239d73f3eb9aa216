/**
 * Watches on ZooKeeper. A key watch holds a persistent watch where the server has one (>= 3.6)
 * and reads only changes it cannot account for (see {@link KeyWatch}); a prefix watch (and a key
 * watch on an older server) uses one-shot watches: every notification wakes one worker per
 * watch that re-reads with a read that also re-arms (getData / getChildren with watch=true:
 * value, stat and the new watch in one round trip). Either way the worker compares with what it
 * last emitted and emits only what is new: a version is never emitted twice, and a skipped one
 * shows as a gap in `version` (the core turns it into a `coalesced` event). A new session
 * re-arms everything and emits `reset`.
 */
import type { Entry, Logger, Watch, WatchEvent } from '../../lib/backend.js';
import { SharedStructError, isSharedStructError } from '../../lib/errors.js';
import { withDeadline } from '../../lib/util/abort.js';
import { exponentialBackoff, retry, type BackoffPolicy } from '../../lib/retry.js';
import { AsyncQueue } from '../../lib/util/async-queue.js';
import type { ZkConnection } from './connection.js';
import { describeError } from './errors.js';
import type { ZooKeeperBackend } from './index.js';
import type { ZkEvent } from './zk-client.js';

/** Between attempts at a watch's re-read: 50 ms, doubling, at most 1 s. */
const REARM_BACKOFF: BackoffPolicy = exponentialBackoff({ initialMs: 50, maxMs: 1000, jitter: 0 });

/** What a watch needs from its backend. */
export interface WatchHost {
  readonly backend: ZooKeeperBackend;
  /** The live session (waits while a lost one is replaced). */
  current(signal: AbortSignal): Promise<ZkConnection>;
  /** Resolves when a session is live again. */
  untilLive(signal: AbortSignal): Promise<void>;
  readonly closedSignal: AbortSignal;
  readonly requestTimeoutMs: number;
  readonly logger: Logger;
  remove(watch: ZkWatch): void;
}

/** A watch as the backend drives it. */
export interface ZkWatch extends Watch {
  /** Resolves once the first read armed the watch (tests use it to write only after). */
  armed(): Promise<void>;
  start(): void;
  /** The session was lost: the watches it held are gone. */
  sessionLost(): void;
  /** A new session is up: re-arm everything and emit `reset`. */
  sessionRenewed(): void;
  /** The backend closed: the stream ends with `CLOSED`. */
  backendClosed(): void;
  /** @internal The watch's own signal, aborted when it ends (tests count its listeners). */
  readonly signal: AbortSignal;
}

/** The value of a `keysOnly` entry (names only). */
const NO_VALUE = new Uint8Array(0);

/** The identity of one life of a key: its create revision and the last version emitted. */
interface Known {
  readonly createRevision: bigint;
  readonly version: number;
}

/** What a single-key comparison decides. */
function diffEntry(
  key: string,
  known: Known | undefined,
  entry: Entry | undefined,
  deletedAt: bigint,
): { events: WatchEvent[]; known: Known | undefined } {
  const events: WatchEvent[] = [];
  if (!entry) {
    if (known) events.push({ type: 'delete', key, revision: deletedAt });
    return { events, known: undefined };
  }
  if (known && known.createRevision === entry.createRevision) {
    // Same life: only a higher version is news (a re-fired watch may read what we emitted).
    if (entry.version > known.version) events.push({ type: 'put', entry });
    return { events, known: entry.version > known.version ? toKnown(entry) : known };
  }
  if (known) {
    // The key was deleted and created again between two reads: end the old life first. The
    // delete's revision is not known; the new life's create revision is after it.
    events.push({ type: 'delete', key, revision: entry.createRevision });
  }
  events.push({ type: 'put', entry });
  return { events, known: toKnown(entry) };
}

function toKnown(entry: Entry): Known {
  return { createRevision: entry.createRevision, version: entry.version };
}

function maxBig(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}

/** The worker loop, the queue and the lifecycle shared by key and prefix watches. */
abstract class BaseWatch implements ZkWatch {
  protected readonly host: WatchHost;
  protected readonly afterRevision: bigint | undefined;
  readonly #queue: AsyncQueue<WatchEvent>;
  readonly #stop = new AbortController();
  #dirty = false;
  #running = false;
  #closed = false;
  /** Nothing emitted yet: the first read is the baseline (or the catch-up from afterRevision). */
  protected first = true;
  /** The next read follows a new session: emit `reset`. */
  protected needReset = false;
  /** The session the watches are armed on (watchers left on older ones are inert). */
  protected armedOn: ZkConnection | undefined;
  /** The session of the run in progress: its replies may have registered watchers already. */
  #syncingOn: ZkConnection | undefined;
  readonly #armed: Promise<void>;
  #resolveArmed!: () => void;

  constructor(host: WatchHost, afterRevision: bigint | undefined) {
    this.host = host;
    this.afterRevision = afterRevision;
    this.#queue = new AsyncQueue<WatchEvent>(() => this.close());
    this.#armed = new Promise<void>((resolve) => (this.#resolveArmed = resolve));
  }

  armed(): Promise<void> {
    return this.#armed;
  }

  [Symbol.asyncIterator](): AsyncIterator<WatchEvent> {
    return this.#queue[Symbol.asyncIterator]();
  }

  start(): void {
    this.wake();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stop.abort(new SharedStructError('CLOSED', 'the watch was closed'));
    if (this.armedOn) this.unregister(this.armedOn);
    if (this.#syncingOn && this.#syncingOn !== this.armedOn) this.unregister(this.#syncingOn);
    this.host.remove(this);
    this.#queue.end();
  }

  backendClosed(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stop.abort(new SharedStructError('CLOSED', 'the ZooKeeper backend is closed'));
    this.#queue.fail(new SharedStructError('CLOSED', 'the ZooKeeper backend is closed'));
  }

  sessionLost(): void {
    // The worker notices on its next request (the old session refuses); nothing to do now.
  }

  sessionRenewed(): void {
    this.needReset = true;
    this.wake();
  }

  /** @internal The watch's own signal (aborted when it ends); tests count its listeners. */
  get signal(): AbortSignal {
    return this.#stop.signal;
  }

  protected get closed(): boolean {
    return this.#closed;
  }

  /** Open, with no worker run going on or due: state may be decided synchronously. */
  protected get idle(): boolean {
    return !this.#closed && !this.#running && !this.#dirty;
  }

  protected emit(event: WatchEvent): void {
    if (!this.#closed) this.#queue.push(event);
  }

  /** A notification (or a new session) asks for a re-read. */
  protected wake(): void {
    if (this.#closed) return;
    this.#dirty = true;
    if (!this.#running) void this.#run();
  }

  /** Re-reads, re-arms and emits what changed. Runs one at a time. */
  protected abstract sync(conn: ZkConnection, signal: AbortSignal): Promise<void>;

  /** Runs the requests of one step under the request deadline (a step with no request needs none). */
  protected io<T>(signal: AbortSignal, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    return withDeadline('zookeeper watch read', this.host.requestTimeoutMs, signal, fn);
  }
  /** Forgets this watch's watchers on `conn`. */
  protected abstract unregister(conn: ZkConnection): void;

  async #run(): Promise<void> {
    this.#running = true;
    const signal = this.#stop.signal;
    try {
      while (this.#dirty && !this.#closed) {
        try {
          await retry(
            async (attempt) => {
              // After a failure: once a session is live again (the backoff is the retry's).
              if (attempt.number > 1) await this.host.untilLive(signal);
              // This attempt reads everything notified so far.
              this.#dirty = false;
              const conn = await this.host.current(signal);
              if (this.armedOn && this.armedOn !== conn) {
                // A session we did not see end (renewal raced this loop): its watches are gone.
                this.needReset = true;
              }
              this.#syncingOn = conn;
              await this.sync(conn, signal);
              this.armedOn = conn;
              this.#resolveArmed();
            },
            {
              what: `zookeeper watch of ${this.describe()}`,
              policy: REARM_BACKOFF,
              signal,
              // Unauthorized, invalid, closed: it will not get better by retrying.
              retryIf: (err) => !this.#closed && !(isSharedStructError(err) && !err.retryable),
              onRetry: (err, attempt, delayMs) => {
                // A disconnect costs a retry or two; more than that is worth a warning.
                const line = `zookeeper: watch of ${this.describe()} failed (attempt ${attempt}), retrying in ${delayMs} ms: ${describeError(err)}`;
                if (attempt >= 5) this.host.logger.warn(line);
                else this.host.logger.debug(line, { err });
              },
            },
          );
        } catch (err) {
          if (this.#closed) return;
          if (isSharedStructError(err, 'CLOSED')) {
            this.backendClosed();
            return;
          }
          if (isSharedStructError(err) && !err.retryable) {
            this.#queue.fail(err);
            this.#closed = true;
            this.host.remove(this);
          }
          return;
        }
      }
    } finally {
      this.#running = false;
    }
  }

  /** What the watch covers, for logs. */
  protected abstract describe(): string;
}

/**
 * A watch on one key. On ZooKeeper >= 3.6 it holds a persistent watch (`addWatch`): every change
 * notifies it and nothing needs re-arming, and a notification that this backend's own write
 * explains costs no request at all; only changes by others are read. On older servers it falls
 * back to one-shot watches re-armed by the read (`getData` with watch=true).
 *
 * Telling own writes from others' without reading, exactly: notifications carry no version, but
 * on one session the server sends a write's notification before its reply, and a change's
 * notification only after the change is in its tree. So `#notified` counts notifications since
 * the last read was sent (every change notified before that is in the read), and `#own` holds
 * the entries of our own writes whose replies came since. Every own entry newer than the known
 * version has had its notification counted; so when the counts are equal and the own versions
 * follow the known one without a gap, every counted notification was ours and the entries are
 * exactly what the store holds. Anything else (a gap, a count that does not match, a delete, a
 * reconnect) reads.
 */
export class KeyWatch extends BaseWatch {
  readonly key: string;
  #known: Known | undefined;
  /** One function per watch: the library dedupes registrations by identity. */
  readonly #watcher = (_event: ZkEvent): void => this.wake();
  /** The session holding our persistent watch (undefined: none yet, or one-shot mode). */
  #persistentOn: ZkConnection | undefined;
  /** The server has no `addWatch`: one-shot watches re-armed by each read. */
  #oneShot = false;
  /** Notifications since the last read was sent. */
  #notified = 0;
  /** Read before trusting the counts again (first arm, reconnect, a failed read). */
  #mustRead = true;
  /** Own writes on the watched session whose replies came since the last read was sent. */
  #own: Entry[] = [];
  readonly #onNotify = (type: number): void => {
    if (type === 0) {
      this.#mustRead = true;
      this.wake();
      return;
    }
    this.#notified += 1;
    if (!this.#decideNow()) this.wake();
  };

  constructor(host: WatchHost, key: string, afterRevision: bigint | undefined) {
    super(host, afterRevision);
    this.key = key;
  }

  /** @internal An own write of this key settled: a postponed decision can be taken now. */
  writeSettled(): void {
    if (this.#notified > 0 && !this.#decideNow()) this.wake();
  }

  /** @internal This backend committed `entry` on `conn` (called as the reply is read). */
  ownWrite(conn: ZkConnection, entry: Entry): void {
    if (conn !== this.#persistentOn || this.closed) return;
    // Bounded: a watch that is not draining its notifications reads instead.
    if (this.#own.length >= 256) {
      this.#own = [];
      this.#mustRead = true;
      return;
    }
    this.#own.push(entry);
    // The notification came before this reply: the pair may settle now, without the worker
    // (else writeSettled wakes it).
    if (this.#notified > 0) this.#decideNow();
  }

  /**
   * The worker's decision for a watch with nothing else to do, taken synchronously (an own
   * write's echo then costs no worker run): own writes that explain every notification are
   * emitted; notifications that own writes in flight may still explain wait for them. True when
   * decided; false when the worker must run (it reads).
   */
  #decideNow(): boolean {
    const conn = this.#persistentOn;
    if (!this.idle || this.#oneShot || !conn || conn.dead || conn !== this.armedOn || this.first || this.needReset || this.#mustRead) return false;
    if (this.#notified === 0) return true;
    const chain = this.#ownChain();
    if (!chain) return false;
    if (chain.length === this.#notified) {
      this.#emitOwn(chain);
      return true;
    }
    return chain.length < this.#notified && this.#notified - chain.length <= this.host.backend.writesInFlight(this.key);
  }

  protected async sync(conn: ZkConnection, signal: AbortSignal): Promise<void> {
    const path = this.host.backend.pathOf(this.key);
    if (!this.#oneShot && this.#persistentOn !== conn) {
      if (await this.io(signal, (s) => conn.addPersistentWatch(path, this.#onNotify, s))) {
        this.#persistentOn = conn;
        this.#notified = 0;
        this.#own = [];
        this.#mustRead = true;
      } else {
        this.#oneShot = true;
        this.host.logger.debug('zookeeper: no addWatch on this server (< 3.6), using one-shot watches', { key: this.key });
      }
    }
    if (this.#oneShot) {
      const { entry, zxid } = await this.io(signal, (s) => this.host.backend.readArmed(conn, this.key, this.#watcher, s));
      if (!this.closed) this.#apply(entry, zxid);
      return;
    }
    if (!this.first && !this.needReset && !this.#mustRead) {
      if (this.#notified === 0) return;
      const chain = this.#ownChain();
      if (chain) {
        if (chain.length === this.#notified) return this.#emitOwn(chain);
        // Notifications our own writes in flight may still explain: each one's reply comes
        // right after its notification, and writeSettled wakes us. Bounded by their deadlines.
        if (chain.length < this.#notified && this.#notified - chain.length <= this.host.backend.writesInFlight(this.key)) return;
      }
    }
    this.#mustRead = true; // until this read succeeds
    this.#notified = 0;
    const { entry, zxid } = await this.io(signal, (s) => this.host.backend.readWatched(conn, this.key, s));
    this.#mustRead = false;
    if (this.closed) return;
    this.#apply(entry, zxid);
    const known = this.#known;
    this.#own = known ? this.#own.filter((e) => e.createRevision === known.createRevision && e.version > known.version) : [];
  }

  /**
   * The own entries newer than the known version, if they follow it without a gap (else
   * undefined: someone else wrote in between, and only a read can tell what).
   */
  #ownChain(): Entry[] | undefined {
    const known = this.#known;
    if (!known) return undefined;
    const own = this.#own.filter((e) => e.createRevision === known.createRevision && e.version > known.version).sort((a, b) => a.version - b.version);
    for (const [i, e] of own.entries()) if (e.version !== known.version + 1 + i) return undefined;
    return own;
  }

  /** Emits own writes that account for every notification counted. */
  #emitOwn(chain: readonly Entry[]): void {
    this.#notified = 0;
    this.#own = [];
    for (const e of chain) this.emit({ type: 'put', entry: e });
    this.#known = toKnown(chain[chain.length - 1]!);
  }

  /** Emits what a read of the key found. */
  #apply(entry: Entry | undefined, zxid: bigint): void {
    if (this.needReset) {
      this.needReset = false;
      this.first = false;
      this.#known = entry ? toKnown(entry) : undefined;
      this.emit({ type: 'reset', entries: entry ? [entry] : [], revision: entry ? maxBig(zxid, entry.revision) : zxid });
      return;
    }
    if (this.first) {
      this.first = false;
      this.#known = entry ? toKnown(entry) : undefined;
      const after = this.afterRevision;
      if (after === undefined) return;
      if (entry && entry.revision > after) this.emit({ type: 'put', entry });
      // Gone now, and the store moved since `after`: it may have existed then.
      else if (!entry && zxid > after) this.emit({ type: 'delete', key: this.key, revision: zxid });
      return;
    }
    const { events, known } = diffEntry(this.key, this.#known, entry, zxid);
    this.#known = known;
    for (const event of events) this.emit(event);
  }

  protected describe(): string {
    return `key ${this.key}`;
  }

  protected unregister(conn: ZkConnection): void {
    const path = this.host.backend.pathOf(this.key);
    conn.unregister(path, this.#watcher);
    conn.removePersistentWatch(path, this.#onNotify);
  }
}

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
    const base = this.host.backend.pathOf(this.#prefix);
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
        const path = this.host.backend.pathOf(this.#prefix);
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
    const listing = await this.host.backend.readChildren(
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
      names.map((name) => this.host.backend.readData(conn, `${this.#base}/${name}`, this.#dataWatcher(name), signal)),
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
    const backend = this.host.backend;
    conn.unregister(backend.pathOf(this.#prefix), this.#childWatcher);
    conn.removePersistentWatch(backend.pathOf(this.#prefix), this.#onChildren);
    for (const [name, watcher] of this.#dataWatchers) conn.unregister(backend.pathOf(`${this.#base}/${name}`), watcher);
  }
}
