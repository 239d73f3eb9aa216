/**
 * The ZooKeeper adapter: the {@link Backend} seam on a ZooKeeper ensemble, loaded by the core
 * for `zk://host:port[,host:port]/chroot` URLs. See docs/ZOOKEEPER.md for the design: the
 * consistent-read barrier, watch re-arming, session handling and the multi workaround.
 *
 * This file is the Backend operations, request by request. The rest, bottom up: zk-client.ts
 * (the library, and the one door to its internals), wire.ts (jute records), errors.ts; one
 * session — connection.ts composing dialer.ts, liveness.ts, demux.ts, watch-registry.ts;
 * sessions.ts (replacing lost sessions); address.ts, entries.ts, reads.ts, txn.ts (what the
 * operations share); watch.ts, key-watch.ts, prefix-watch.ts and open-watches.ts (watches).
 */
import { tlsParams, type TlsParams } from '../../lib/util/tls.js';
import type {
  AdapterOptions,
  Backend,
  BackendAddress,
  BackendFactory,
  BackendFeature,
  BackendLimits,
  CreateOptions,
  CreateResult,
  EndpointStatus,
  Entry,
  EntryStat,
  GetOptions,
  ScanOptions,
  HistoryOptions,
  KeyHistory,
  ListOptions,
  Logger,
  PutResult,
  PutOptions,
  RequestOptions,
  Session,
  Txn,
  TxnResult,
  Watch,
  WatchOptions,
  WatchTarget,
} from '../../lib/backend.js';
import { SharedStructError, isSharedStructError } from '../../lib/errors.js';
import { withDeadline } from '../../lib/util/abort.js';
import { retry, type BackoffPolicy } from '../../lib/retry.js';
import { Counters } from '../../lib/util/counters.js';
import type { Reply, ZkConnection } from './connection.js';
import { SessionKeeper } from './sessions.js';
import { convertCode, wasNotSent } from './errors.js';
import { Chroot, validateKey } from './address.js';
import { aclOf, byCreation, firstSequential, toEntry, toEntryStat, znodeVersion } from './entries.js';
import { probeZooKeeper } from './probe.js';
import { CREATE_ATTEMPTS, Reads } from './reads.js';
import { buildMulti, committed, committedEntries, failure, putEntries } from './txn.js';
import { OpenWatches } from './open-watches.js';
import {
  createRequest,
  deleteRequest,
  multiRequest,
  parseCreate2,
  parseMulti,
  parseStat,
  pathWatchRequest,
  setDataRequest,
  syncRequest,
} from './wire.js';
import { MODE, OP, ZkCodes, type AclObject, type ZkStat } from './zk-client.js';

/** How deep `scan` walks (names have at most 200 characters, so far fewer levels in practice). */
const MAX_SCAN_DEPTH = 128;

/** ZooKeeper's default `jute.maxbuffer` (0xfffff): the largest packet a server accepts. */
export const JUTE_MAX_BUFFER = 1048575;
/** Room left in a packet for the header, the path and the ACLs around the value. */
const PACKET_HEADROOM = 4096;
/** Default {@link BackendLimits.maxValueBytes}. */
export const DEFAULT_MAX_VALUE_BYTES = JUTE_MAX_BUFFER - PACKET_HEADROOM;

const FEATURES: ReadonlySet<BackendFeature> = new Set<BackendFeature>(['txn']);

/** A request whose session was lost before it was sent waits for the next session, then goes at once. */
const AT_ONCE: BackoffPolicy = { delayMs: () => 0 };

/** What {@link ZooKeeperBackend.connect} builds a backend from. */
interface BackendParts {
  readonly keeper: SessionKeeper;
  readonly watches: OpenWatches;
  readonly closed: AbortController;
  readonly counters: Counters;
  readonly connectString: string;
  readonly chroot: string;
  readonly options: AdapterOptions;
  readonly tls: TlsParams | undefined;
}

/**
 * The {@link Backend} on ZooKeeper. One instance holds one session at a time; when that session
 * is lost it builds a new one (a new epoch) and re-arms every watch with a `reset`.
 */
export class ZooKeeperBackend implements Backend {
  readonly kind = 'zookeeper';
  readonly limits: BackendLimits;
  readonly features = FEATURES;
  readonly counters: Counters;
  readonly #keeper: SessionKeeper;
  readonly #options: AdapterOptions;
  readonly #connectString: string;
  readonly #chroot: Chroot;
  readonly #reads: Reads;
  readonly #acls: readonly AclObject[];
  readonly #logger: Logger;
  readonly #watches: OpenWatches;
  /** Fires when the backend closes: stops the reconnect loop and every wait. */
  readonly #closed: AbortController;
  #closing: Promise<void> | undefined;
  /** The server creates container nodes (cleared when it refuses one). */
  #containers = true;
  /** The TLS material every connection of this backend uses (undefined: plain TCP). */
  readonly #tls: TlsParams | undefined;

  /** Use {@link createBackend}. */
  private constructor(parts: BackendParts) {
    const { options } = parts;
    this.#keeper = parts.keeper;
    this.#watches = parts.watches;
    this.#closed = parts.closed;
    this.#tls = parts.tls;
    this.counters = parts.counters;
    this.#connectString = parts.connectString;
    this.#chroot = new Chroot(parts.chroot);
    this.#reads = new Reads(this.#chroot);
    this.#options = options;
    this.#logger = options.logger;
    this.#acls = aclOf(options.acl ?? (options.auth ? 'creator' : 'open'));
    this.limits = Object.freeze({ maxValueBytes: options.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES, maxTxnOps: options.maxTxnOps });
  }

  /** Connects (first session within `connectTimeoutMs`) and returns the backend. */
  static async connect(address: BackendAddress, options: AdapterOptions): Promise<ZooKeeperBackend> {
    if (address.hosts.length === 0) throw new SharedStructError('INVALID_ARGUMENT', 'url: a zk:// URL needs at least one host, e.g. zk://127.0.0.1:2181');
    // Bad TLS material throws INVALID_ARGUMENT here, before anything is sent.
    const tls = tlsParams(options.tls);
    if (options.auth && options.auth.username.includes(':')) {
      throw new SharedStructError('INVALID_ARGUMENT', 'auth.username: a ZooKeeper digest user name cannot contain ":"');
    }
    // addressRules has checked the chroot; a factory called directly gets the same normalisation.
    const chroot = address.path.replace(/\/+$/, '');
    if (chroot) validateKey(chroot);
    const connectString = address.hosts.join(',');
    const counters = new Counters();
    const closed = new AbortController();
    const watches = new OpenWatches();
    const keeper = await SessionKeeper.open({ connectString, adapter: options, tls, counters, closed: closed.signal }, watches);
    return new ZooKeeperBackend({ keeper, watches, closed, counters, connectString, chroot, options, tls });
  }

  get session(): Session {
    return this.#keeper.session;
  }

  /**
   * The current session's id and password. Tests use them to expire the session for real: a
   * second client attaches with the same credentials and closes the session.
   */
  sessionCredentials(): { sessionId: Buffer; password: Buffer; timeoutMs: number } {
    const conn = this.#keeper.conn;
    return { ...conn.credentials(), timeoutMs: conn.sessionTimeoutMs };
  }

  /** The `host:port,...` this backend connects to (test tooling finds a client's proxies by it). */
  get connectString(): string {
    return this.#connectString;
  }

  /** Liveness pings sent so far, over all sessions (kept out of {@link counters}: they carry no operation). */
  get heartbeats(): number {
    return this.#keeper.heartbeats;
  }

  // ---- Backend ----

  async get(key: string, options: GetOptions = {}): Promise<Entry | undefined> {
    validateKey(key);
    const path = this.#chroot.pathOf(key);
    return this.#request(`get ${key}`, options.signal, async (conn, signal) => {
      if (options.consistent) {
        // No await between the two: sync and getData go out back to back on one session, and
        // ZooKeeper answers a session's requests in order, so the read runs after the sync.
        const barrier = conn.send('sync', OP.sync, syncRequest(path), undefined, { signal });
        const read = this.#reads.getData(conn, path, undefined, signal);
        // Handled from the start: when the deadline aborts both, `await barrier` throws first and
        // `read` would reject with nobody listening (an unhandled rejection ends the process;
        // the fault matrix found it with a leader SIGSTOPped).
        read.catch(() => {});
        const synced = await barrier;
        if (synced.err !== 0 && synced.err !== ZkCodes.NO_NODE) throw convertCode(synced.err, `sync ${key}`);
        return this.#reads.entryOf(key, await read);
      }
      return this.#reads.entryOf(key, await this.#reads.getData(conn, path, undefined, signal));
    });
  }

  async stat(key: string, options: GetOptions = {}): Promise<EntryStat | undefined> {
    validateKey(key);
    const path = this.#chroot.pathOf(key);
    const stat = await this.#exists(`stat ${key}`, 'exists', key, path, options);
    return stat && toEntryStat(stat);
  }

  /** An `exists` of `path` (after a `sync` when consistent), counted as `counter`: its stat, or undefined when there is no node. */
  #exists(what: string, counter: string, key: string, path: string, options: GetOptions): Promise<ZkStat | undefined> {
    return this.#request(what, options.signal, async (conn, signal) => {
      if (options.consistent) void conn.send('sync', OP.sync, syncRequest(path), undefined, { signal }).catch(() => {});
      const reply = await conn.send(counter, OP.exists, pathWatchRequest('exists', path, false), parseStat, { signal });
      if (reply.err === ZkCodes.NO_NODE) return undefined;
      if (reply.err !== 0) throw convertCode(reply.err, `exists ${key}`);
      return reply.body!;
    });
  }

  async create(key: string, value: Uint8Array, options: CreateOptions = {}): Promise<CreateResult> {
    validateKey(key, options.sequential);
    this.#checkSize(key, value);
    const path = this.#chroot.pathOf(key);
    const mode =
      (options.ephemeral ? MODE.ephemeral : MODE.persistent) | (options.sequential ? MODE.persistentSequential : 0);
    // Queues, registrations and locks come and go: their parent goes with the last of them.
    const containerParent = options.ephemeral === true || options.sequential === true;
    return this.#request(`create ${key}`, options.signal, async (conn, signal) => {
      for (let attempt = 1; ; attempt += 1) {
        const reply = await conn.send('create', OP.create2, createRequest(path, value, this.#acls, mode), parseCreate2, { signal });
        if (reply.err === 0) {
          const created = reply.body!;
          return { created: true, entry: toEntry(this.#chroot.keyOf(created.path), value, created.stat) };
        }
        if (attempt >= CREATE_ATTEMPTS) throw convertCode(reply.err, `create ${key}`);
        if (reply.err === ZkCodes.NO_NODE) {
          // A missing parent, or a container parent the server deleted (empty) since: make it
          // (again) and retry.
          await this.#createParents(conn, path, signal, containerParent);
          continue;
        }
        if (reply.err === ZkCodes.NODE_EXISTS) {
          const current = this.#reads.entryOf(key, await this.#reads.getData(conn, path, undefined, signal));
          // Deleted between the two requests: try the create again.
          if (current) return { created: false, current };
          continue;
        }
        throw convertCode(reply.err, `create ${key}`);
      }
    });
  }

  async put(key: string, value: Uint8Array, options: PutOptions): Promise<PutResult> {
    validateKey(key);
    this.#checkSize(key, value);
    const path = this.#chroot.pathOf(key);
    const version = znodeVersion(options.expectedVersion, 'expectedVersion');
    return this.#request(`put ${key}`, options.signal, async (conn, signal) => {
      if (version === undefined) {
        return { ok: false, current: this.#reads.entryOf(key, await this.#reads.getData(conn, path, undefined, signal)) };
      }
      // The whole uncontended cost: one setData, no read. Its watches learn of it as the reply
      // is read, so they need not read it back (see KeyWatch).
      const onReply = (err: number, stat: unknown): void => {
        if (err === 0) this.#watches.ownWrite(conn, toEntry(key, value, stat as ZkStat));
      };
      const reply = await this.#watches.writing([key], () => conn.send('setData', OP.setData, setDataRequest(path, value, version), parseStat, { signal, onReply }));
      if (reply.err === 0) return { ok: true, entry: toEntry(key, value, reply.body!) };
      if (reply.err === ZkCodes.NO_NODE) return { ok: false, current: undefined };
      if (reply.err === ZkCodes.BAD_VERSION) {
        return { ok: false, current: this.#reads.entryOf(key, await this.#reads.getData(conn, path, undefined, signal)) };
      }
      throw convertCode(reply.err, `setData ${key}`);
    });
  }

  async delete(key: string, options: RequestOptions & { readonly expectedVersion?: number } = {}): Promise<boolean> {
    validateKey(key);
    const path = this.#chroot.pathOf(key);
    const version = options.expectedVersion === undefined ? -1 : znodeVersion(options.expectedVersion, 'expectedVersion');
    if (version === undefined) return false;
    return this.#request(`delete ${key}`, options.signal, async (conn, signal) => {
      const reply = await conn.send('delete', OP.delete, deleteRequest(path, version), undefined, { signal });
      if (reply.err === 0) return true;
      if (reply.err === ZkCodes.NO_NODE || reply.err === ZkCodes.BAD_VERSION) return false;
      throw convertCode(reply.err, `delete ${key}`);
    });
  }

  async list(prefix: string, options: ListOptions = {}): Promise<Entry[]> {
    validateKey(prefix);
    const { limit } = options;
    return this.#request(`list ${prefix}`, options.signal, async (conn, signal) => {
      if (options.consistent) {
        void conn.send('sync', OP.sync, syncRequest(this.#chroot.pathOf(prefix)), undefined, { signal }).catch(() => {});
      }
      const fromWatch = limit !== undefined && !options.consistent ? await this.#headFromWatch(conn, prefix, limit, signal) : undefined;
      if (fromWatch) return fromWatch;
      const { entries } = await this.#reads.readChildren(conn, prefix, undefined, () => undefined, signal, { limit });
      return limit === undefined ? entries : entries.slice(0, limit);
    });
  }

  async scan(prefix: string, options: ScanOptions = {}): Promise<Entry[]> {
    // '' is the root (the empty namespace): its children are listed as those of '/'.
    if (prefix !== '') validateKey(prefix);
    const { onUnreadable, ...rest } = options;
    // A walk, level by level: every node's children (and their data) in one listing each.
    const out: Entry[] = [];
    let level = [prefix === '' ? '/' : prefix];
    for (let depth = 0; level.length > 0 && depth < MAX_SCAN_DEPTH; depth++) {
      const found = (await Promise.all(level.map((p) => (onUnreadable ? this.#listReadable(p, rest, onUnreadable) : this.list(p, rest))))).flat();
      out.push(...found);
      level = found.map((e) => e.key);
    }
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  /**
   * `list(prefix)` for a scan that goes past what this identity may not read: when the listing
   * fails UNAUTHORIZED, the children are read one by one and each one denied (or `prefix` itself,
   * when its children may not be listed) is reported instead. One listing when nothing is denied.
   */
  async #listReadable(prefix: string, options: GetOptions, onUnreadable: (key: string) => void): Promise<Entry[]> {
    const denied = (err: unknown): boolean => isSharedStructError(err, 'UNAUTHORIZED');
    try {
      return await this.list(prefix, options);
    } catch (err) {
      if (!denied(err)) throw err;
    }
    let names: string[];
    try {
      names = await this.#request(`list ${prefix}`, options.signal, async (conn, signal) => (await this.#reads.readChildren(conn, prefix, undefined, () => undefined, signal, { keysOnly: true })).names);
    } catch (err) {
      if (!denied(err)) throw err;
      if (prefix !== '/') onUnreadable(prefix);
      return [];
    }
    const base = prefix === '/' ? '' : prefix;
    const read = await Promise.all(
      names.map(async (name) => {
        const key = `${base}/${name}`;
        try {
          return await this.get(key, options);
        } catch (err) {
          if (!denied(err)) throw err;
          onUnreadable(key);
          return undefined;
        }
      }),
    );
    return read.filter((e): e is Entry => e !== undefined);
  }

  history(key: string, _options: HistoryOptions): Promise<KeyHistory> {
    return Promise.reject(
      new SharedStructError('UNSUPPORTED', `history of ${key}: ZooKeeper keeps only a znode's current data (its version counts the writes, but past values are not stored or readable); use etcd, which keeps revisions until compaction, or record changes with watch`),
    );
  }

  endpoints(_options: RequestOptions = {}): Promise<EndpointStatus[]> {
    return Promise.all(this.#connectString.split(',').map((h) => probeZooKeeper(h, this.#tls, this.#options.requestTimeoutMs)));
  }

  async count(prefix: string, options: GetOptions = {}): Promise<number> {
    validateKey(prefix);
    // Counted as `count`: an exists of the parent, whose stat has numChildren.
    const stat = await this.#exists(`count ${prefix}`, 'count', prefix, this.#chroot.pathOf(prefix), options);
    return stat?.numChildren ?? 0;
  }

  async txn(txn: Txn, options: RequestOptions = {}): Promise<TxnResult> {
    const multi = buildMulti(txn, { pathOf: (key) => this.#chroot.pathOf(key), checkSize: (key, value) => this.#checkSize(key, value), acls: this.#acls });
    if (!multi) return { ok: false };
    if (multi.ops.length === 0) return { ok: true, entries: [] };
    const puts = txn.ops.filter((op) => op.op === 'put').map((op) => op.key);
    return this.#request('txn', options.signal, async (conn, signal) => {
      for (let attempt = 1; ; attempt += 1) {
        // Key watches learn of the puts as the reply is read, before the notifications that
        // follow it are handled, so they need not read their own write back (see KeyWatch).
        const onReply = (err: number, body: unknown): void => {
          const results = err === 0 ? committed(body) : undefined;
          if (results) for (const entry of putEntries(txn, multi, results)) this.#watches.ownWrite(conn, entry);
        };
        const reply = await this.#watches.writing(puts, () => conn.send('multi', OP.multi, multiRequest(multi.ops), parseMulti, { signal, onReply }));
        const results = reply.err === 0 ? committed(reply.body) : undefined;
        if (results) return { ok: true, entries: committedEntries(txn, multi, results, reply.zxid, (path) => this.#chroot.keyOf(path)) };
        const { err, op: failedOp } = failure(multi, reply.err, reply.body);
        if (err === ZkCodes.NO_NODE && failedOp?.type === 'create' && attempt < CREATE_ATTEMPTS) {
          // A create whose parent is missing: make the parents, then the whole multi again.
          await this.#createParents(conn, failedOp.path, signal, failedOp.mode === MODE.ephemeral || failedOp.mode === MODE.ephemeralSequential);
          continue;
        }
        if (err === ZkCodes.BAD_VERSION || err === ZkCodes.NO_NODE || err === ZkCodes.NODE_EXISTS) return { ok: false };
        throw convertCode(err, 'multi');
      }
    });
  }

  watch(target: WatchTarget, options: WatchOptions = {}): Watch {
    if ('key' in target) validateKey(target.key);
    else validateKey(target.prefix);
    if (this.#closed.signal.aborted) throw new SharedStructError('CLOSED', 'the ZooKeeper backend is closed');
    return this.#watches.open(target, options, {
      reads: this.#reads,
      current: (signal) => this.#keeper.current(signal),
      untilLive: (signal) => this.#keeper.untilLive(signal),
      closedSignal: this.#closed.signal,
      requestTimeoutMs: this.#options.requestTimeoutMs,
      logger: this.#logger,
    });
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // ---- for tests, and list's head of a watched folder ----

  /** The znode path of a key (the chroot applied). @internal */
  pathOf(key: string): string {
    return this.#chroot.pathOf(key);
  }

  /**
   * The head of a folder from the names a live `keysOnly` watch of it holds on `conn` (its
   * persistent children watch is told of every join and leave), read without listing: a
   * consumer taking one message a round then sends one getData instead of getChildren + getData.
   * Undefined when no such watch is live, a name is not sequential, or a named child is gone
   * (a leave not yet told): the caller lists.
   */
  async #headFromWatch(conn: ZkConnection, prefix: string, limit: number, signal: AbortSignal): Promise<Entry[] | undefined> {
    const names = this.#watches.namesOn(prefix, conn);
    if (!names) return undefined;
    const head = names.length > limit ? firstSequential(names, limit) : names;
    if (!head) return undefined;
    const entries = await this.#reads.readNamed(conn, prefix === '/' ? '' : prefix, head, () => undefined, signal);
    if (entries.some((e) => e === undefined)) return undefined;
    return byCreation(entries as Entry[]);
  }

  // ---- internals ----

  /** Runs `fn` on the current session with the request deadline; converts stray errors once. */
  async #request<T>(what: string, signal: AbortSignal | undefined, fn: (conn: ZkConnection, signal: AbortSignal) => Promise<T>): Promise<T> {
    if (this.#closed.signal.aborted) throw new SharedStructError('CLOSED', `${what}: the ZooKeeper backend is closed`);
    try {
      return await withDeadline(`zookeeper ${what}`, this.#options.requestTimeoutMs, signal, (s) => {
        // The session was lost before the request left: nothing of it was applied (earlier
        // steps of `fn` are reads or answered writes), so it runs again on the next session
        // (waiting for it is SessionKeeper.current's), within the same deadline.
        const again = (): Promise<T> =>
          retry(async () => fn(await this.#keeper.current(s), s), {
            what: `zookeeper ${what}`,
            policy: AT_ONCE,
            signal: s,
            retryIf: (err) => wasNotSent(err) && !this.#closed.signal.aborted,
          });
        // The common case, a live session, goes straight to it: no retry loop, no wait.
        const conn = s.aborted ? undefined : this.#keeper.usable;
        if (!conn) return again();
        return fn(conn, s).catch((err: unknown) => {
          if (wasNotSent(err) && !this.#closed.signal.aborted && !s.aborted) return again();
          throw err;
        });
      });
    } catch (err) {
      // Requests cut short by close() report CLOSED, whatever the session said.
      if (this.#closed.signal.aborted && !isSharedStructError(err, 'CLOSED')) {
        throw new SharedStructError('CLOSED', `${what}: the ZooKeeper backend is closed`, { cause: err });
      }
      if (isSharedStructError(err)) throw err;
      throw new SharedStructError('CONNECTION', `${what} failed unexpectedly: ${err instanceof Error ? err.message : String(err)}`, { cause: err, retryable: false });
    }
  }

  /**
   * Creates every missing ancestor of `path` (empty), pipelined: one round trip. With
   * `containerParent` the direct parent is a container node (ZooKeeper >= 3.5.1): the server
   * deletes it once its last child is gone, so lock, election, group, listener and queue parents
   * do not pile up. Other ancestors (the namespace, `_locks`, a struct's own node) are persistent,
   * and so is anything at or above the chroot. A server that cannot make containers gets
   * persistent parents from then on.
   */
  async #createParents(conn: ZkConnection, path: string, signal: AbortSignal, containerParent = false): Promise<void> {
    const parts = path.split('/').slice(1, -1);
    const creates: Promise<Reply<unknown>>[] = [];
    let current = '';
    let container: string | undefined;
    for (const [i, part] of parts.entries()) {
      current += `/${part}`;
      const asContainer = containerParent && this.#containers && i === parts.length - 1 && current.length > this.#chroot.path.length;
      if (asContainer) container = current;
      creates.push(
        asContainer
          ? conn.send('createContainer', OP.createContainer, createRequest(current, new Uint8Array(0), this.#acls, MODE.container), undefined, { signal })
          : conn.send('create', OP.create, createRequest(current, new Uint8Array(0), this.#acls, MODE.persistent), undefined, { signal }),
      );
    }
    const replies = await Promise.all(creates);
    for (const [i, reply] of replies.entries()) {
      if (reply.err === 0 || reply.err === ZkCodes.NODE_EXISTS) continue;
      if (container !== undefined && i === replies.length - 1 && (reply.err === ZkCodes.UNIMPLEMENTED || reply.err === ZkCodes.BAD_ARGUMENTS)) {
        this.#containers = false;
        this.#logger.info('zookeeper: the server cannot create container nodes (< 3.5.1); parents are persistent', { path: this.#chroot.keyOf(container) });
        return this.#createParents(conn, path, signal, false);
      }
      throw convertCode(reply.err, `create parents of ${this.#chroot.keyOf(path)}`);
    }
  }

  /**
   * A packet over jute.maxbuffer makes the server drop the connection, failing every request
   * and watch read in flight on it: refuse such a value here, before it is sent.
   */
  #checkSize(key: string, value: Uint8Array): void {
    if (value.byteLength > this.limits.maxValueBytes) {
      throw new SharedStructError(
        'VALUE_TOO_LARGE',
        `the value of ${key} is ${value.byteLength} bytes; the limit is ${this.limits.maxValueBytes} (the servers' jute.maxbuffer less room for the request): store less, or raise jute.maxbuffer on every server and pass maxValueBytes`,
      );
    }
  }

  async #close(): Promise<void> {
    this.#closed.abort(new SharedStructError('CLOSED', 'the ZooKeeper backend is closed'));
    this.#watches.closeAll();
    await this.#keeper.close(Math.min(this.#options.requestTimeoutMs, 2000));
  }
}

/**
 * The adapter's factory, called by `connect('zk://...')`.
 *
 * @example
 * ```ts
 * const client = await connect('zk://127.0.0.1:2181/myapp', { namespace: '' });
 * ```
 */
export const createBackend: BackendFactory = (address, options) => ZooKeeperBackend.connect(address, options);

export { addressRules } from './address.js';
