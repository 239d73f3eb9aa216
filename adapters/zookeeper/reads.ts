/**
 * The reads the backend and its watches share, on a given session: getData (leaving a watch or
 * not), the existence fallback of a key watch, and a folder's listing with its children read in
 * one pipelined round trip. Apart from index.ts so that the watches (watch.ts) depend on these
 * reads, not on the backend: they get them through their host's `reads` (`WatchHost`).
 */
import { setMaxListeners } from 'node:events';
import type { Entry } from '../../lib/backend.js';
import { SharedStructError } from '../../lib/errors.js';
import type { Chroot } from './address.js';
import type { Reply, ZkConnection } from './connection.js';
import { EMPTY_VALUE, byCreation, firstSequential, toEntry } from './entries.js';
import { convertCode } from './errors.js';
import { parseChildren, parseGetData, parseStat, pathWatchRequest } from './wire.js';
import { OP, ZkCodes, toBigInt, type ZkEvent, type ZkStat } from './zk-client.js';

/** How many times a create that races a delete (or a missing parent) is tried again. */
export const CREATE_ATTEMPTS = 5;

/**
 * Runs `fn` with a signal of our own that follows `signal` through one listener, when `fn` is
 * about to hand it to `count` requests at once (each adds a listener of its own).
 */
async function withChildSignal<T>(signal: AbortSignal, count: number, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  if (count <= 1) return fn(signal);
  const child = new AbortController();
  setMaxListeners(0, child.signal);
  const onAbort = (): void => child.abort(signal.reason);
  if (signal.aborted) onAbort();
  else signal.addEventListener('abort', onAbort, { once: true });
  try {
    return await fn(child.signal);
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

/** The optional parts of {@link Reads.readChildren}. */
export interface ReadChildrenOptions {
  /** Which children to read (default: all). */
  readonly needsRead?: (name: string) => boolean;
  /** Only the first `limit` children (in creation order) need reading. */
  readonly limit?: number | undefined;
  /** List the names only, read no child. */
  readonly keysOnly?: boolean;
  /** Called synchronously as the listing's reply is read, before any later frame. */
  readonly onReply?: () => void;
  /** The request counter to count the listing under (default `getChildren` / `watchGetChildren`). */
  readonly counted?: string;
}

/** What a read found: the entry (undefined: no node) and the zxid the server had reached. */
export interface ReadResult {
  readonly entry: Entry | undefined;
  readonly zxid: bigint;
}

/** The reads of one backend (its chroot), on whichever session the caller passes. */
export class Reads {
  readonly #chroot: Chroot;

  constructor(chroot: Chroot) {
    this.#chroot = chroot;
  }

  /** The znode path of a key (the chroot applied). */
  pathOf(key: string): string {
    return this.#chroot.pathOf(key);
  }

  /**
   * getData of `path` (leaving a data watch from `watcher`, if given), counted as `counted`
   * (default `getData`, or `watchGetData` with a watcher). NONODE is a reply; other codes throw.
   */
  async getData(
    conn: ZkConnection,
    path: string,
    watcher: ((event: ZkEvent) => void) | undefined,
    signal: AbortSignal,
    counted?: string,
  ): Promise<Reply<{ data: Buffer; stat: ZkStat }>> {
    // Reads that arm a watch are counted apart (`watch*`), so cost checks can tell a write's
    // own requests from the re-arming read its echo causes.
    const op = counted ?? (watcher ? 'watchGetData' : 'getData');
    const reply = await conn.send(op, OP.getData, pathWatchRequest('getData', path, watcher !== undefined), parseGetData, {
      signal,
      watch: watcher ? { kind: 'data', path, watcher } : undefined,
    });
    if (reply.err !== 0 && reply.err !== ZkCodes.NO_NODE) throw convertCode(reply.err, `getData ${this.#chroot.keyOf(path)}`);
    return reply;
  }

  /** The entry of a getData reply (undefined: no node). */
  entryOf(key: string, reply: Reply<{ data: Buffer; stat: ZkStat }>): Entry | undefined {
    return reply.err === 0 ? toEntry(key, reply.body!.data, reply.body!.stat) : undefined;
  }

  /**
   * getData without a watch, for a key watch that holds a persistent watch (counted as a
   * watch read, `watchGetData`, like the re-arming read of a one-shot watch).
   */
  async readWatched(conn: ZkConnection, key: string, signal: AbortSignal): Promise<ReadResult> {
    const reply = await this.getData(conn, this.#chroot.pathOf(key), undefined, signal, 'watchGetData');
    return { entry: this.entryOf(key, reply), zxid: reply.zxid };
  }

  /**
   * getData leaving a data watch; when the node is missing, exists leaving an existence watch
   * (a node created in between is read again). Returns the entry or undefined, and the zxid the
   * server had reached when it answered.
   */
  async readArmed(
    conn: ZkConnection,
    key: string,
    watcher: (event: ZkEvent) => void,
    signal: AbortSignal,
  ): Promise<ReadResult> {
    const path = this.#chroot.pathOf(key);
    for (let attempt = 1; attempt <= CREATE_ATTEMPTS; attempt += 1) {
      const reply = await this.getData(conn, path, watcher, signal);
      if (reply.err === 0) return { entry: toEntry(key, reply.body!.data, reply.body!.stat), zxid: reply.zxid };
      const exists = await conn.send('watchExists', OP.exists, pathWatchRequest('exists', path, true), parseStat, {
        signal,
        watch: { kind: 'exists', path, watcher },
      });
      if (exists.err === ZkCodes.NO_NODE) return { entry: undefined, zxid: exists.zxid };
      if (exists.err !== 0) throw convertCode(exists.err, `exists ${key}`);
      // Created between the two reads (exists left a data watch): read the value again.
    }
    throw new SharedStructError('CONFLICT', `${key} kept appearing and vanishing while a watch was armed`);
  }

  /**
   * getData leaving a data watch (no existence fallback: a prefix watch learns about new
   * children from its child watch).
   */
  async readData(
    conn: ZkConnection,
    key: string,
    watcher: (event: ZkEvent) => void,
    signal: AbortSignal,
  ): Promise<ReadResult> {
    const reply = await this.getData(conn, this.#chroot.pathOf(key), watcher, signal);
    return { entry: this.entryOf(key, reply), zxid: reply.zxid };
  }

  /**
   * Lists the children of `prefix` (leaving a child watch when `childWatcher` is given) and
   * reads the ones `needsRead` names (leaving data watches from `dataWatcher`). Children that
   * vanish in between are left out. Sorted by create revision.
   */
  async readChildren(
    conn: ZkConnection,
    prefix: string,
    childWatcher: ((event: ZkEvent) => void) | undefined,
    dataWatcher: (name: string) => ((event: ZkEvent) => void) | undefined,
    signal: AbortSignal,
    options: ReadChildrenOptions = {},
  ): Promise<{ exists: boolean; names: string[]; entries: Entry[]; zxid: bigint; pzxid: bigint }> {
    const { needsRead = () => true, limit, keysOnly = false, onReply, counted } = options;
    const path = this.#chroot.pathOf(prefix);
    const watch = childWatcher !== undefined;
    const reply = await conn.send(counted ?? (watch ? 'watchGetChildren' : 'getChildren'), OP.getChildren2, pathWatchRequest('getChildren', path, watch), parseChildren, {
      signal,
      watch: childWatcher ? { kind: 'child', path, watcher: childWatcher } : undefined,
      onReply,
    });
    if (reply.err === ZkCodes.NO_NODE) {
      if (childWatcher) {
        const exists = await conn.send('watchExists', OP.exists, pathWatchRequest('exists', path, true), parseStat, {
          signal,
          watch: { kind: 'exists', path, watcher: childWatcher },
        });
        if (exists.err === 0) {
          // Created in between: list again (as if the watch had fired).
          childWatcher({ type: 1, name: 'NODE_CREATED', path });
        } else if (exists.err !== ZkCodes.NO_NODE) {
          throw convertCode(exists.err, `exists ${prefix}`);
        }
        return { exists: false, names: [], entries: [], zxid: exists.zxid, pzxid: 0n };
      }
      return { exists: false, names: [], entries: [], zxid: reply.zxid, pzxid: 0n };
    }
    if (reply.err !== 0) throw convertCode(reply.err, `getChildren ${prefix}`);
    const base = prefix === '/' ? '' : prefix;
    const names = reply.body!.children;
    let toRead = names.filter(needsRead);
    // The head of a folder of sequential znodes: their 10-digit suffix is the parent's counter,
    // so it orders them by creation and only the first `limit` need reading. Any other name
    // (not made by a sequential create) means reading them all and ordering by czxid.
    if (limit !== undefined && toRead.length > limit) toRead = firstSequential(toRead, limit) ?? toRead;
    if (keysOnly) {
      // The caller wants the names only (WatchOptions.keysOnly): no getData, and the entries say
      // so (empty value, version and revisions 0).
      const entries = toRead.map((name): Entry => ({ key: `${base}/${name}`, value: EMPTY_VALUE, version: 0, revision: 0n, createRevision: 0n, ephemeral: false }));
      return { exists: true, names, entries, zxid: reply.zxid, pzxid: toBigInt(reply.body!.stat.pzxid) };
    }
    const entries = (await this.readNamed(conn, base, toRead, dataWatcher, signal)).filter((e): e is Entry => e !== undefined);
    return { exists: true, names, entries: byCreation(entries), zxid: reply.zxid, pzxid: toBigInt(reply.body!.stat.pzxid) };
  }

  /**
   * Reads the children `names` of `base`, pipelined on the one socket: one round trip for all,
   * under one listener on the caller's signal (one each would be hundreds on a long folder).
   * Undefined for a child that is gone.
   */
  readNamed(
    conn: ZkConnection,
    base: string,
    names: readonly string[],
    dataWatcher: (name: string) => ((event: ZkEvent) => void) | undefined,
    signal: AbortSignal,
  ): Promise<(Entry | undefined)[]> {
    return withChildSignal(signal, names.length, (s) =>
      Promise.all(
        names.map(async (name) => {
          const childKey = `${base}/${name}`;
          const r = await this.getData(conn, this.#chroot.pathOf(childKey), dataWatcher(name), s);
          if (r.err === ZkCodes.NO_NODE) return undefined;
          if (r.err !== 0) throw convertCode(r.err, `getData ${childKey}`);
          return toEntry(childKey, r.body!.data, r.body!.stat);
        }),
      ),
    );
  }
}
