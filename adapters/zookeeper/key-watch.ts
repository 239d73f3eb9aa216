/**
 * The watch on one key (see {@link KeyWatch}): a persistent watch where the server has one,
 * one-shot watches re-armed by each read where it has not.
 */
import type { Entry } from '../../lib/backend.js';
import type { ZkConnection } from './connection.js';
import { BaseWatch, diffEntry, maxBig, toKnown, type Known, type WatchHost } from './watch.js';
import type { ZkEvent } from './zk-client.js';

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
    return chain.length < this.#notified && this.#notified - chain.length <= this.host.writesInFlight(this.key);
  }

  protected async sync(conn: ZkConnection, signal: AbortSignal): Promise<void> {
    const path = this.host.reads.pathOf(this.key);
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
      const { entry, zxid } = await this.io(signal, (s) => this.host.reads.readArmed(conn, this.key, this.#watcher, s));
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
        if (chain.length < this.#notified && this.#notified - chain.length <= this.host.writesInFlight(this.key)) return;
      }
    }
    this.#mustRead = true; // until this read succeeds
    this.#notified = 0;
    const { entry, zxid } = await this.io(signal, (s) => this.host.reads.readWatched(conn, this.key, s));
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
    const path = this.host.reads.pathOf(this.key);
    conn.unregister(path, this.#watcher);
    conn.removePersistentWatch(path, this.#onNotify);
  }
}
