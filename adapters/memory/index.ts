/**
 * The in-memory backend: `memory://` (one default store per process) and `memory://NAME`
 * (isolated stores). It keeps the real stores' semantics and adds test hooks (partition, session
 * expiry, dropped watches, delayed delivery, compaction) so the core's recovery paths can be
 * tested without servers.
 */
import type {
  AdapterOptions,
  Backend,
  BackendAddress,
  BackendFactory,
  BackendFeature,
  CreateOptions,
  CreateResult,
  Entry,
  EndpointStatus,
  EntryStat,
  GetOptions,
  ScanOptions,
  HistoryOptions,
  KeyHistory,
  ListOptions,
  PutResult,
  PutOptions,
  RequestOptions,
  Txn,
  TxnResult,
  Watch,
  WatchEvent,
  WatchOptions,
  WatchTarget,
} from '../../lib/backend.js';
import { SharedStructError } from '../../lib/errors.js';
import { withDeadline } from '../../lib/util/abort.js';
import { AsyncQueue } from '../../lib/util/async-queue.js';
import { Counters } from '../../lib/util/counters.js';
import { SessionTracker } from '../../lib/util/session.js';
import { memoryStore, type HistoryRecord, type MemoryStore } from './store.js';
import type { AddressRules } from '../../lib/options.js';

export { MemoryStore, memoryStore } from './store.js';

/** Default value limit: the same order as the real stores (ZooKeeper's 1 MiB). */
export const MEMORY_MAX_VALUE_BYTES = 1024 * 1024;

interface LiveWatch {
  readonly target: WatchTarget;
  readonly queue: AsyncQueue<WatchEvent>;
  /** Records held back while the backend is partitioned. */
  readonly held: WatchEvent[];
}

/** A client's connection to a {@link MemoryStore}, with hooks for fault injection in tests. */
export class MemoryBackend implements Backend {
  readonly kind = 'memory';
  readonly limits: { maxValueBytes: number; maxTxnOps?: number | undefined };
  readonly features: ReadonlySet<BackendFeature> = new Set<BackendFeature>(['txn', 'everyVersion', 'history']);
  readonly counters = new Counters();
  readonly session: SessionTracker;
  readonly store: MemoryStore;
  readonly #options: AdapterOptions;
  readonly #watches = new Set<LiveWatch>();
  #sessionId: string;
  #closed = false;
  #delayMs = 0;
  #partition: { healed: Promise<void>; heal: () => void; timers: NodeJS.Timeout[] } | undefined;
  /** The keepalive a real client sends: the server is heard from every third of the ttl unless cut off. */
  readonly #keepalive: NodeJS.Timeout;

  constructor(store: MemoryStore, options: AdapterOptions) {
    this.store = store;
    this.#options = options;
    this.limits = { maxValueBytes: options.maxValueBytes ?? MEMORY_MAX_VALUE_BYTES, maxTxnOps: options.maxTxnOps };
    this.#sessionId = store.openSession();
    this.session = new SessionTracker(this.#sessionId, options.sessionTtlMs);
    this.#keepalive = setInterval(() => {
      if (!this.#partition && this.store.isLive(this.#sessionId)) this.session.touch();
    }, Math.max(50, Math.floor(options.sessionTtlMs / 3)));
    this.#keepalive.unref();
  }

  // ---- Backend -------------------------------------------------------------------------------

  get(key: string, options: GetOptions = {}): Promise<Entry | undefined> {
    return this.#request('get', options, () => this.store.get(key));
  }

  stat(key: string, options: GetOptions = {}): Promise<EntryStat | undefined> {
    return this.#request('stat', options, () => {
      const e = this.store.get(key);
      return e && { version: e.version, revision: e.revision, createRevision: e.createRevision };
    });
  }

  create(key: string, value: Uint8Array, options: CreateOptions = {}): Promise<CreateResult> {
    return this.#request('create', options, () => {
      const target = options.sequential ? this.store.sequentialKey(key) : key;
      const ephemeral = options.ephemeral === true;
      if (ephemeral && !this.store.isLive(this.#sessionId)) {
        throw new SharedStructError('SESSION_LOST', 'the session ended before the ephemeral key was created');
      }
      const done = this.store.commit([], [{ op: 'create', key: target, value, ephemeral }], this.#sessionId);
      if (done) return { created: true, entry: done[0]! };
      return { created: false, current: this.store.get(target)! };
    });
  }

  put(key: string, value: Uint8Array, options: PutOptions): Promise<PutResult> {
    return this.#request('put', options, () => {
      const life = options.life;
      if (life) {
        const current = this.store.get(key);
        if (current?.createRevision !== life.createRevision) return { ok: false, current };
      }
      const done = this.store.commit([], [{ op: 'put', key, value, expectedVersion: options.expectedVersion }], this.#sessionId);
      if (done) return { ok: true, entry: done[0]! };
      return { ok: false, current: this.store.get(key) };
    });
  }

  delete(key: string, options: RequestOptions & { readonly expectedVersion?: number } = {}): Promise<boolean> {
    return this.#request('delete', options, () => {
      const op = { op: 'delete' as const, key, ...(options.expectedVersion !== undefined && { expectedVersion: options.expectedVersion }) };
      return this.store.commit([], [op], this.#sessionId) !== undefined;
    });
  }

  list(prefix: string, options: ListOptions = {}): Promise<Entry[]> {
    return this.#request('list', options, () => {
      const all = this.store.list(prefix);
      return options.limit === undefined ? all : all.slice(0, options.limit);
    });
  }

  scan(prefix: string, options: ScanOptions = {}): Promise<Entry[]> {
    return this.#request('scan', options, () => this.store.scan(prefix));
  }

  history(key: string, options: HistoryOptions): Promise<KeyHistory> {
    return this.#request('history', options, () => this.store.keyHistory(key, options.limit));
  }

  endpoints(options: RequestOptions = {}): Promise<EndpointStatus[]> {
    return this.#request('endpoints', options, () => [{ endpoint: `memory://${this.store.name}`, reachable: true, version: 'in-process', role: 'standalone', roundTripMs: 0 }]);
  }

  count(prefix: string, options: GetOptions = {}): Promise<number> {
    return this.#request('count', options, () => this.store.list(prefix).length);
  }

  txn(txn: Txn, options: RequestOptions = {}): Promise<TxnResult> {
    return this.#request('txn', options, () => {
      const ops = txn.ops.map((op) => (op.op === 'create' && op.sequential ? { ...op, key: this.store.sequentialKey(op.key), sequential: false } : op));
      const done = this.store.commit(txn.compare, ops, this.#sessionId);
      if (!done) return { ok: false };
      return txn.list ? { ok: true, entries: done, listed: { entries: this.store.list(txn.list.prefix).slice(0, txn.list.limit), revision: this.store.revision } } : { ok: true, entries: done };
    });
  }

  watch(target: WatchTarget, options: WatchOptions = {}): Watch {
    this.counters.count('watch');
    const live: LiveWatch = {
      target,
      held: [],
      queue: new AsyncQueue<WatchEvent>(() => {
        unsubscribe();
        this.#watches.delete(live);
        options.signal?.removeEventListener('abort', onAbort);
      }),
    };
    const onAbort = (): void => live.queue.end();
    if (this.#closed) {
      live.queue.fail(new SharedStructError('CLOSED', 'the client is closed'));
      return { [Symbol.asyncIterator]: () => live.queue[Symbol.asyncIterator](), close: () => live.queue.end() };
    }
    this.#watches.add(live);
    if (options.afterRevision !== undefined) {
      const replay = this.store.historyAfter(target, options.afterRevision);
      if (replay === undefined) {
        this.#deliver(live, { type: 'reset', entries: this.store.snapshot(target), revision: this.store.revision });
      } else {
        for (const record of replay) this.#deliver(live, toEvent(record));
      }
    }
    const unsubscribe = this.store.addWatcher({ target, deliver: (record) => this.#deliver(live, toEvent(record)) });
    options.signal?.addEventListener('abort', onAbort, { once: true });
    if (options.signal?.aborted) live.queue.end();
    return { [Symbol.asyncIterator]: () => live.queue[Symbol.asyncIterator](), close: () => live.queue.end() };
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    clearInterval(this.#keepalive);
    for (const t of this.#partition?.timers ?? []) clearTimeout(t);
    this.#partition?.heal();
    this.store.endSession(this.#sessionId);
    for (const w of [...this.#watches]) w.queue.end();
    this.session.transition('closed');
    return Promise.resolve();
  }

  // ---- test hooks ----------------------------------------------------------------------------

  /**
   * Test hook: the server expires this client's session now. Ephemerals vanish, the client
   * learns `lost`, opens a new session (`reconnected`, next epoch) and, as ZooKeeper does, its
   * watches lose continuity and say so with a `reset`.
   */
  expireSession(): void {
    if (this.#closed) return;
    this.store.endSession(this.#sessionId);
    this.#afterSessionLoss();
  }

  /** Test hook: every open watch of this client breaks with a `CONNECTION` error. */
  dropWatches(): void {
    for (const w of [...this.#watches]) {
      w.queue.fail(new SharedStructError('CONNECTION', 'watch dropped (test hook)'));
    }
  }

  /** Test hook: delay every watch delivery of this client by `ms` (0 turns it off). */
  delayDelivery(ms: number): void {
    this.#delayMs = ms;
  }

  /** Test hook: forget the store's history up to `revision`, like etcd's compaction. */
  compact(revision?: bigint): void {
    this.store.compact(revision);
  }

  /**
   * Test hook: cut this client off. Requests get no answer (they end at their deadline with
   * `TIMEOUT`), watch events are held, the session is `suspended` after a third of its ttl and
   * expires on the server after the ttl. Returns the function that heals it.
   */
  partition(): () => void {
    if (this.#partition || this.#closed) return () => {};
    // Reachable until now, as a real client's keepalives would have shown.
    this.session.touch();
    let heal!: () => void;
    const healed = new Promise<void>((resolve) => (heal = resolve));
    const ttl = this.#options.sessionTtlMs;
    const timers = [
      setTimeout(() => this.session.transition('suspended'), Math.floor(ttl / 3)),
      setTimeout(() => {
        this.store.endSession(this.#sessionId);
        this.session.transition('lost', { cause: new SharedStructError('SESSION_LOST', 'session expired while partitioned') });
      }, ttl),
    ];
    for (const t of timers) t.unref();
    this.#partition = { healed, heal, timers };
    return () => {
      const p = this.#partition;
      if (!p) return;
      this.#partition = undefined;
      for (const t of p.timers) clearTimeout(t);
      p.heal();
      if (this.#closed) return;
      if (!this.store.isLive(this.#sessionId)) {
        this.#afterSessionLoss();
      } else if (this.session.state === 'suspended') {
        this.session.transition('reconnected');
      }
      for (const w of this.#watches) {
        for (const ev of w.held.splice(0)) this.#push(w, ev);
      }
    };
  }

  // ---- internals -----------------------------------------------------------------------------

  #afterSessionLoss(): void {
    if (this.session.state !== 'lost') {
      this.session.transition('lost', { cause: new SharedStructError('SESSION_LOST', 'session expired') });
    }
    this.#sessionId = this.store.openSession();
    this.session.transition('reconnected', { newSessionId: this.#sessionId });
    for (const w of this.#watches) {
      w.held.length = 0;
      this.#push(w, { type: 'reset', entries: this.store.snapshot(w.target), revision: this.store.revision });
    }
  }

  #deliver(w: LiveWatch, event: WatchEvent): void {
    if (this.#partition) w.held.push(event);
    else this.#push(w, event);
  }

  #push(w: LiveWatch, event: WatchEvent): void {
    if (this.#delayMs > 0) setTimeout(() => w.queue.push(event), this.#delayMs).unref();
    else w.queue.push(event);
  }

  #request<T>(op: string, options: RequestOptions, fn: () => T): Promise<T> {
    if (this.#closed) return Promise.reject(new SharedStructError('CLOSED', 'the client is closed'));
    this.counters.count(op);
    return withDeadline(`memory ${op}`, this.#options.requestTimeoutMs, options.signal, async () => {
      // A partitioned client's request is never answered; the deadline ends it.
      if (this.#partition) await this.#partition.healed;
      if (this.#closed) throw new SharedStructError('CLOSED', 'the client is closed');
      this.session.touch();
      return fn();
    }).catch((err: unknown) => {
      // Outcomes come back as values; what is thrown here is a failure of the request itself.
      this.counters.failed(op, err);
      throw err;
    });
  }
}

function toEvent(record: HistoryRecord): WatchEvent {
  return record.type === 'put'
    ? { type: 'put', entry: record.entry }
    : { type: 'delete', key: record.key, revision: record.revision };
}

/** The adapter factory for `memory://` and `memory://NAME`. */
export const createBackend: BackendFactory = (address: BackendAddress, options: AdapterOptions) => {
  return Promise.resolve(new MemoryBackend(memoryStore(address.hosts[0] ?? ''), options));
};

/** `memory://` (the process's default store) or `memory://NAME` (isolated by name); no path. */
export const addressRules: AddressRules = ({ url, authority, path, params }) => {
  if (path !== '' && path !== '/') throw new SharedStructError('INVALID_ARGUMENT', `url '${url}': a memory store name has no '/'`);
  if (authority !== '' && !/^[A-Za-z0-9._-]+$/.test(authority)) {
    throw new SharedStructError('INVALID_ARGUMENT', `url '${url}': memory store names use A-Z a-z 0-9 . _ -`);
  }
  return { scheme: 'memory', hosts: [authority], path: '', params };
};

