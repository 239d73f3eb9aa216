/**
 * The fault matrix's seeded bugs, as faulty backends wrapped around a real one through
 * `connectWrapped(url, options, wrap)`: the library's own code runs unchanged on top, and each
 * wrapper makes one mistake an adapter could plausibly make. The matrix must catch every one
 * (docs/RELIABILITY.md); test/unit/faulty-backend.test.ts shows each changes what the library
 * does, and that the real backend does not.
 */
import type {
  Backend,
  BackendFeature,
  BackendLimits,
  CreateOptions,
  CreateResult,
  Entry,
  EntryStat,
  EndpointStatus,
  HistoryOptions,
  KeyHistory,
  GetOptions,
  ScanOptions,
  ListOptions,
  PutOptions,
  PutResult,
  RequestCounters,
  RequestOptions,
  Session,
  SessionState,
  SessionStateChange,
  Txn,
  TxnCompare,
  TxnResult,
  Watch,
  WatchEvent,
  WatchOptions,
  WatchTarget,
} from '../../lib/backend.js';

/** The bugs a run can seed, one wrapper each. */
export const SEEDED_BUGS = ['cached-read', 'unchecked-staleness', 'blind-cas', 'lock-without-queue', 'lock-ignores-session', 'split-dequeue'] as const;
export type SeededBug = (typeof SEEDED_BUGS)[number];

/** Passes every call to `inner`; a seeded bug overrides what it gets wrong. */
export class ForwardingBackend implements Backend {
  readonly inner: Backend;

  constructor(inner: Backend) {
    this.inner = inner;
  }

  get kind(): string {
    return this.inner.kind;
  }
  get limits(): BackendLimits {
    return this.inner.limits;
  }
  get features(): ReadonlySet<BackendFeature> {
    return this.inner.features;
  }
  get counters(): RequestCounters {
    return this.inner.counters;
  }
  get session(): Session {
    return this.inner.session;
  }
  get(key: string, options?: GetOptions): Promise<Entry | undefined> {
    return this.inner.get(key, options);
  }
  stat(key: string, options?: GetOptions): Promise<EntryStat | undefined> {
    return this.inner.stat(key, options);
  }
  create(key: string, value: Uint8Array, options?: CreateOptions): Promise<CreateResult> {
    return this.inner.create(key, value, options);
  }
  put(key: string, value: Uint8Array, options: PutOptions): Promise<PutResult> {
    return this.inner.put(key, value, options);
  }
  delete(key: string, options?: RequestOptions & { readonly expectedVersion?: number }): Promise<boolean> {
    return this.inner.delete(key, options);
  }
  list(prefix: string, options?: ListOptions): Promise<Entry[]> {
    return this.inner.list(prefix, options);
  }
  scan(prefix: string, options?: ScanOptions): Promise<Entry[]> {
    return this.inner.scan(prefix, options);
  }
  history(key: string, options: HistoryOptions): Promise<KeyHistory> {
    return this.inner.history(key, options);
  }
  endpoints(options?: RequestOptions): Promise<EndpointStatus[]> {
    return this.inner.endpoints(options);
  }
  count(prefix: string, options?: GetOptions): Promise<number> {
    return this.inner.count(prefix, options);
  }
  txn(txn: Txn, options?: RequestOptions): Promise<TxnResult> {
    return this.inner.txn(txn, options);
  }
  watch(target: WatchTarget, options?: WatchOptions): Watch {
    return this.inner.watch(target, options);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

/** The adapter's own backend under any number of wrappers (for adapter-specific fields such as etcd's `leaseId`). */
export function innermost(backend: Backend): Backend {
  let b = backend;
  while (b instanceof ForwardingBackend) b = b.inner;
  return b;
}

/**
 * A client-side copy of every key being watched, kept by the watch's events and by this
 * client's own reads and writes (read-then-watch, write-through): what Kubernetes' API server
 * keeps, and the base of two mistakes below. A copy is only as new as the last news that reached
 * this process.
 */
class WatchCacheBackend extends ForwardingBackend {
  /** Key → its newest entry seen (null: seen deleted), with the revision it is known at. */
  readonly #copies = new Map<string, { entry: Entry | null; revision: bigint }>();
  /** Key → how many watches on it are open. */
  readonly #watching = new Map<string, number>();

  /** The copy of `key`, when one is kept (the key is watched and was seen). */
  protected copyOf(key: string): { entry: Entry | undefined } | undefined {
    if ((this.#watching.get(key) ?? 0) === 0) return undefined;
    const copy = this.#copies.get(key);
    return copy && { entry: copy.entry ?? undefined };
  }

  #note(key: string, entry: Entry | null, revision: bigint): void {
    const copy = this.#copies.get(key);
    if (!copy || revision >= copy.revision) this.#copies.set(key, { entry, revision });
  }

  protected async read(key: string, options?: GetOptions): Promise<Entry | undefined> {
    const entry = await this.inner.get(key, options);
    // A read that found nothing carries no revision: it only fills a key not seen yet.
    this.#note(key, entry ?? null, entry?.revision ?? -1n);
    return entry;
  }

  override get(key: string, options?: GetOptions): Promise<Entry | undefined> {
    return this.read(key, options);
  }

  override async create(key: string, value: Uint8Array, options?: CreateOptions): Promise<CreateResult> {
    const r = await this.inner.create(key, value, options);
    const entry = r.created ? r.entry : r.current;
    this.#note(entry.key, entry, entry.revision);
    return r;
  }

  override async put(key: string, value: Uint8Array, options: PutOptions): Promise<PutResult> {
    const r = await this.inner.put(key, value, options);
    const entry = r.ok ? r.entry : r.current;
    if (entry) this.#note(key, entry, entry.revision);
    return r;
  }

  override async txn(txn: Txn, options?: RequestOptions): Promise<TxnResult> {
    const r = await this.inner.txn(txn, options);
    if (r.ok) for (const e of r.entries) if (e) this.#note(e.key, e, e.revision);
    return r;
  }

  override watch(target: WatchTarget, options?: WatchOptions): Watch {
    const inner = this.inner.watch(target, options);
    if (!('key' in target)) return inner;
    const key = target.key;
    this.#watching.set(key, (this.#watching.get(key) ?? 0) + 1);
    let open = true;
    const done = (): void => {
      if (!open) return;
      open = false;
      this.#watching.set(key, (this.#watching.get(key) ?? 1) - 1);
    };
    const feed = (ev: WatchEvent): void => {
      if (ev.type === 'put') this.#note(key, ev.entry, ev.entry.revision);
      else if (ev.type === 'delete') this.#note(key, null, ev.revision);
      else if (ev.type === 'reset') this.#note(key, ev.entries.find((e) => e.key === key) ?? null, ev.revision);
    };
    return {
      close: () => {
        done();
        inner.close();
      },
      async *[Symbol.asyncIterator]() {
        try {
          for await (const ev of inner) {
            feed(ev);
            yield ev;
          }
        } finally {
          done();
        }
      },
    };
  }
}

/**
 * `cached-read`: a consistent read answered from the watch cache. The cache is usually current,
 * so the read looks right; but nothing proves it caught up with the store (Kubernetes serves a
 * consistent read from its cache only after a progress notification at the store's current
 * revision), and a client cut off from the store gets its last copy back, at once, as if it were
 * linearizable, where the real read would have timed out.
 */
class CachedReadBackend extends WatchCacheBackend {
  override get(key: string, options?: GetOptions): Promise<Entry | undefined> {
    const copy = options?.consistent ? this.copyOf(key) : undefined;
    return copy ? Promise.resolve(copy.entry) : this.read(key, options);
  }
}

/**
 * `unchecked-staleness`: the freshness check (`stat`) answered from the watch cache instead of
 * the store ("the watch is live, it knows the version"). Each periodic check then confirms the
 * struct's cache with no answer from the store, so `read()` never says `STALE_READ`, however
 * long the client has been cut off: the staleness bound is silently not enforced.
 */
class UncheckedStalenessBackend extends WatchCacheBackend {
  override stat(key: string, options?: GetOptions): Promise<EntryStat | undefined> {
    const copy = this.copyOf(key);
    if (!copy) return this.inner.stat(key, options);
    const e = copy.entry;
    return Promise.resolve(e && { version: e.version, revision: e.revision, createRevision: e.createRevision });
  }
}

/**
 * `blind-cas`: a lost compare "resolved" by the adapter: it writes again, once, against the
 * version the store holds now (for a put, the version its answer carried; for a transaction,
 * each compared version read again). The caller's compare is dropped, and its write, computed
 * from an older value, overwrites a newer one: a lost update.
 */
class BlindCasBackend extends ForwardingBackend {
  override async put(key: string, value: Uint8Array, options: PutOptions): Promise<PutResult> {
    const first = await this.inner.put(key, value, options);
    if (first.ok || !first.current) return first;
    const { current } = first;
    return this.inner.put(key, value, { ...options, expectedVersion: current.version, life: { createRevision: current.createRevision, ephemeral: current.ephemeral } });
  }

  override async txn(txn: Txn, options?: RequestOptions): Promise<TxnResult> {
    const first = await this.inner.txn(txn, options);
    if (first.ok || !txn.compare.some((c) => 'version' in c)) return first;
    const compare: TxnCompare[] = [];
    for (const c of txn.compare) {
      if (!('version' in c)) {
        compare.push(c);
        continue;
      }
      const now = await this.inner.stat(c.key, options);
      compare.push(now ? { key: c.key, version: now.version, createRevision: now.createRevision } : c);
    }
    return this.inner.txn({ compare, ops: txn.ops }, options);
  }
}

/**
 * `lock-without-queue`: `list` returns the children newest first (a wrong sort order on the
 * range: descending create revision). Whoever joins a lock's queue last finds its own key at the
 * head and believes it holds the lock at once, while the real head still holds it.
 */
class LockWithoutQueueBackend extends ForwardingBackend {
  override async list(prefix: string, options?: ListOptions): Promise<Entry[]> {
    const { limit, ...rest } = options ?? {};
    const all = (await this.inner.list(prefix, rest)).reverse();
    return limit === undefined ? all : all.slice(0, limit);
  }
}

/**
 * `lock-ignores-session`: a session facade that hides session churn: it models the session from
 * what the client sends, not from what the server answers. It counts every keepalive it sends
 * (one a third of the ttl, as etcd's client does) as contact, answered or not, and shows a lost
 * session as `suspended` ("we are reconnecting anyway"). A holder cut off from the store then
 * never reaches its loss deadline and is never told its session is lost: it learns only once a
 * new session starts, or its key's delete reaches it — after the server freed the lock.
 */
class SessionFacade implements Session {
  readonly #inner: Session;
  readonly #start = Date.now();
  readonly #keepaliveMs: number;

  constructor(inner: Session) {
    this.#inner = inner;
    this.#keepaliveMs = Math.max(200, Math.floor(inner.ttlMs / 3));
  }

  get state(): SessionState {
    const s = this.#inner.state;
    return s === 'lost' ? 'suspended' : s;
  }
  get epoch(): number {
    return this.#inner.epoch;
  }
  get id(): string {
    return this.#inner.id;
  }
  get ttlMs(): number {
    return this.#inner.ttlMs;
  }
  get since(): number {
    return this.#inner.since;
  }
  get lastContactAt(): number {
    const sent = this.#start + Math.floor((Date.now() - this.#start) / this.#keepaliveMs) * this.#keepaliveMs;
    return Math.max(this.#inner.lastContactAt, sent);
  }
  onStateChange(listener: (change: SessionStateChange) => void): () => void {
    let last: SessionStateChange | undefined;
    return this.#inner.onStateChange((change) => {
      const shown: SessionStateChange = change.state === 'lost' ? { ...change, state: 'suspended' } : change;
      if (shown.state === 'suspended' && last?.state === 'suspended' && last.epoch === shown.epoch) return;
      last = shown;
      listener(shown);
    });
  }
}

class LockIgnoresSessionBackend extends ForwardingBackend {
  readonly #session: Session;

  constructor(inner: Backend) {
    super(inner);
    this.#session = new SessionFacade(inner.session);
  }

  override get session(): Session {
    return this.#session;
  }
}

/**
 * `split-dequeue`: a transaction that removes queued messages (`…/queue/<id>`) is split in two:
 * the rest commits first (the state's compare-and-swap and the replies), then the messages are
 * deleted in a request of their own ("deletes need no compare, the state's compare already
 * serialized the consumers"). Between the two, or when the second request is lost, the messages
 * are still queued after their state change: the next consumer applies them again.
 */
class SplitDequeueBackend extends ForwardingBackend {
  override async txn(txn: Txn, options?: RequestOptions): Promise<TxnResult> {
    const queued = (key: string): boolean => /\/queue\/[^/]+$/.test(key);
    const dequeues = txn.ops.filter((o) => o.op === 'delete' && queued(o.key));
    if (dequeues.length === 0) return this.inner.txn(txn, options);
    const rest = { compare: txn.compare.filter((c) => !queued(c.key)), ops: txn.ops.filter((o) => !dequeues.includes(o)) };
    const r = await this.inner.txn(rest, options);
    if (!r.ok) return r;
    await this.inner.txn({ compare: [], ops: dequeues.map((o) => ({ op: 'delete' as const, key: o.key })) }, options);
    // The entries line up with the caller's ops again (a delete has none).
    let k = 0;
    return { ok: true, entries: txn.ops.map((o) => (dequeues.includes(o) ? undefined : r.entries[k++])) };
  }
}

const WRAPPERS: Record<SeededBug, new (inner: Backend) => Backend> = {
  'cached-read': CachedReadBackend,
  'unchecked-staleness': UncheckedStalenessBackend,
  'blind-cas': BlindCasBackend,
  'lock-without-queue': LockWithoutQueueBackend,
  'lock-ignores-session': LockIgnoresSessionBackend,
  'split-dequeue': SplitDequeueBackend,
};

/** The `wrap` of `connectWrapped` that seeds `bug` into every backend of a client. */
export function faultyBackend(bug: SeededBug): (backend: Backend) => Backend {
  const Wrapper = WRAPPERS[bug];
  return (backend) => new Wrapper(backend);
}
