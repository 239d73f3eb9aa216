/**
 * The one narrow seam between the core and a store. `adapters/memory`, `adapters/etcd` and
 * `adapters/zookeeper` implement it; the core depends on nothing else. It is shaped by what
 * etcd (revisions, leases, Txn) and ZooKeeper (znode versions, zxids, sessions, multi) both
 * offer, so each method maps to one request on each store where that is possible.
 *
 * Conventions every adapter keeps:
 * - Keys are absolute `/`-separated paths (the namespace already applied by the core).
 * - `version` is dense and starts at 1 for a key's life (etcd: the key's `version`; ZooKeeper:
 *   `stat.version + 1`). A delete ends the life; a re-create starts again at 1.
 * - `revision` is the store's global order of writes (etcd: mod_revision; ZooKeeper: mzxid);
 *   `createRevision` is the revision that created the key (etcd: create_revision; ZooKeeper:
 *   czxid). Both are bigint because both stores use 64-bit counters.
 * - An expected outcome (a lost compare, a key that exists) is a result, not an exception.
 *   Failures throw {@link SharedStructError} with a code; the adapter converts its client's
 *   errors exactly once.
 * - Every call that may wait takes an `AbortSignal` and has a deadline of its own
 *   (`requestTimeoutMs`), because neither client has one by default.
 */
import type { SharedStructError } from './errors.js';
import type { AclEntry, TlsOptions } from './options.js';

/** A stored key with its version and revisions. */
export interface Entry {
  readonly key: string;
  readonly value: Uint8Array;
  /** Dense per-key version, from 1. */
  readonly version: number;
  /** Revision of the last write to this key. */
  readonly revision: bigint;
  /** Revision that created this key (a lock's fencing token). */
  readonly createRevision: bigint;
  /** Set when the key is bound to a session and vanishes with it. */
  readonly ephemeral: boolean;
}

/** The version-only view of a key: what a cheap freshness check returns. */
export interface EntryStat {
  readonly version: number;
  readonly revision: bigint;
  readonly createRevision: bigint;
}

/** Options every request takes. */
export interface RequestOptions {
  readonly signal?: AbortSignal | undefined;
}

/** Options of {@link Backend.get}. */
export interface GetOptions extends RequestOptions {
  /**
   * Linearizable read: the answer reflects every write committed before the call started
   * (etcd: a non-serializable range; ZooKeeper: `sync` then `getData`). Without it the adapter
   * may answer from whichever member it is connected to.
   */
  readonly consistent?: boolean;
}

/** Options of {@link Backend.scan}. */
export interface ScanOptions extends GetOptions {
  /**
   * Called with each key below the prefix whose data or children this identity may not read
   * (ZooKeeper: a znode whose ACL denies READ; its subtree is not walked). Without it such a
   * key rejects the whole scan `UNAUTHORIZED`. etcd answers a range whole or not at all, so
   * there a denied prefix rejects either way.
   */
  readonly onUnreadable?: (key: string) => void;
}

/** Options of {@link Backend.list}. */
export interface ListOptions extends GetOptions {
  /**
   * At most this many children, the first in create-revision order (a durable server reads the
   * head of its queue, not all of it). For flat folders: on etcd the limit counts keys at any
   * depth under the prefix.
   */
  readonly limit?: number;
}

/** Options of {@link Backend.create}. */
export interface CreateOptions extends RequestOptions {
  /** Bind the key to the current session: it is deleted when the session ends. */
  readonly ephemeral?: boolean;
  /**
   * Append a unique suffix that orders after every earlier sequential key under the same
   * parent (ZooKeeper: a sequential znode; etcd: a unique suffix, ordered by create revision).
   * The created key is returned in the result.
   */
  readonly sequential?: boolean;
}

/** Result of {@link Backend.create}. */
export type CreateResult =
  | { readonly created: true; readonly entry: Entry }
  | { readonly created: false; readonly current: Entry };

/** Options of {@link Backend.put}. */
export interface PutOptions extends RequestOptions {
  /** The write happens only if the key is at exactly this version. */
  readonly expectedVersion: number;
  /**
   * The life of the key the caller read `expectedVersion` in: its create revision and whether
   * it is ephemeral. When given, the put also fails if the key was deleted and created again
   * since, even if the new life reached the same version (no ABA), and the adapter may build
   * the result from it instead of reading the key back. etcd compares `create_revision` in the
   * same Txn; memory compares it; ZooKeeper's `setData` cannot compare a `czxid`, so there a
   * re-created key at the same version is overwritten (the result's `createRevision` shows it).
   */
  readonly life?: { readonly createRevision: bigint; readonly ephemeral: boolean } | undefined;
}

/** Result of {@link Backend.put}. */
export type PutResult =
  | { readonly ok: true; readonly entry: Entry }
  /** The compare failed; `current` is the stored entry (undefined when the key is gone). */
  | { readonly ok: false; readonly current: Entry | undefined };

/** A condition of a {@link Txn}. */
export type TxnCompare =
  /**
   * The key exists with exactly this dense version; with `createRevision`, also in exactly that
   * life (no ABA across a delete and re-create: etcd compares `create_revision`, memory compares
   * it; ZooKeeper's multi cannot check a czxid, so there only the version is compared).
   */
  | { readonly key: string; readonly version: number; readonly createRevision?: bigint | undefined }
  /** The key exists, whatever its version. */
  | { readonly key: string; readonly exists: true };

/** An operation of a {@link Txn}. */
export type TxnOp =
  /** Overwrite an existing key; with `expectedVersion` the op is itself conditional. */
  | { readonly op: 'put'; readonly key: string; readonly value: Uint8Array; readonly expectedVersion?: number }
  /**
   * Create a key that must not exist; with `sequential`, `key` is a prefix and the adapter appends
   * a unique suffix that orders after every earlier sequential key of the parent (the created
   * key is in the result's entry).
   */
  | { readonly op: 'create'; readonly key: string; readonly value: Uint8Array; readonly ephemeral?: boolean; readonly sequential?: boolean }
  /** Delete a key; with `expectedVersion` the op is itself conditional. */
  | { readonly op: 'delete'; readonly key: string; readonly expectedVersion?: number };

/**
 * A multi-key transaction: every compare holds and then every op applies, atomically, or
 * nothing applies. etcd: one Txn; ZooKeeper: one multi (checks + ops).
 */
export interface Txn {
  readonly compare: readonly TxnCompare[];
  readonly ops: readonly TxnOp[];
  /**
   * After the ops, also list the first `limit` children of `prefix` (in create order), as of the
   * commit, in the same request. Only a store that reads inside a transaction does (etcd: a range
   * in the Txn; memory); elsewhere (ZooKeeper: a multi holds writes only) it is ignored and the
   * result has no `listed`.
   */
  readonly list?: { readonly prefix: string; readonly limit: number } | undefined;
}

/** Children listed inside a transaction, as of its commit. */
export interface Listed {
  readonly entries: readonly Entry[];
  /** The commit's revision: the listing holds every change up to it. */
  readonly revision: bigint;
}

/** Result of {@link Backend.txn}. */
export type TxnResult =
  /**
   * `entries[i]` is the entry written by `ops[i]` (undefined for a delete); `listed`, what
   * {@link Txn.list} asked for (as of the commit's `revision`), where the store could answer it.
   */
  | { readonly ok: true; readonly entries: readonly (Entry | undefined)[]; readonly listed?: Listed }
  | { readonly ok: false };

/** What a watch target covers. */
export type WatchTarget =
  /** One key. */
  | { readonly key: string }
  /** The direct children of a parent key (`<prefix>/<child>`). */
  | { readonly prefix: string };

/** Options of {@link Backend.watch}. */
export interface WatchOptions extends RequestOptions {
  /**
   * Deliver only changes with a revision greater than this. When the store can no longer
   * replay from there (etcd compaction, ZooKeeper's one-shot watches, a new session) the watch
   * says so with a `reset` event instead of leaving a gap. Omitted: changes from now on.
   */
  readonly afterRevision?: bigint;
  /**
   * The caller needs only the keys (a consumer woken by "something changed"): a prefix watch may
   * then skip reading values, and its `put` and `reset` entries may carry an empty `value`,
   * version 0 and revisions 0 (ZooKeeper lists the children without reading them; etcd and
   * memory send values anyway). On ZooKeeper its `delete` revisions may be 0 too (the
   * notification that told it carries no zxid).
   */
  readonly keysOnly?: boolean;
}

/** An event of a {@link Watch}. */
export type WatchEvent =
  /**
   * A key was written. Under ZooKeeper's one-shot watches this may skip versions (the entry is
   * the current one when the watch was re-armed); the consumer sees the gap in `version`.
   */
  | { readonly type: 'put'; readonly entry: Entry }
  /** A key was deleted at `revision`. */
  | { readonly type: 'delete'; readonly key: string; readonly revision: bigint }
  /**
   * Continuity was lost (compaction, a new session, a dropped watch that could not resume):
   * `entries` is the complete current state of the target at `revision`; everything before is
   * superseded.
   */
  | { readonly type: 'reset'; readonly entries: readonly Entry[]; readonly revision: bigint }
  /** Nothing changed up to `revision`; the watch is live (used to confirm caches). */
  | { readonly type: 'progress'; readonly revision: bigint };

/**
 * A live watch. Iterate it for events; it ends when `close()` is called or the signal fires,
 * and throws (a {@link SharedStructError}) only when it cannot continue, e.g. `CLOSED`.
 * Disconnects are the adapter's to survive: it resumes or emits `reset`.
 */
export interface Watch extends AsyncIterable<WatchEvent> {
  close(): void;
}

/** Client session states, as Curator names them. */
export type SessionState = 'connected' | 'suspended' | 'lost' | 'reconnected' | 'closed';

/** A change of session state. */
export interface SessionStateChange {
  readonly state: SessionState;
  /** Increments with every new session: ephemerals of older epochs are gone. */
  readonly epoch: number;
  /** When the state was entered (`Date.now()`). */
  readonly at: number;
  /** The error that caused `suspended` or `lost`, if any. */
  readonly cause?: SharedStructError | undefined;
}

/** The session a backend holds (etcd: a lease with keepalive; ZooKeeper: the client session). */
export interface Session {
  readonly state: SessionState;
  readonly epoch: number;
  /** Backend session id (etcd lease id, ZooKeeper session id), hex. */
  readonly id: string;
  /** The session's time to live: after this long unreachable the server may expire it. */
  readonly ttlMs: number;
  /** When the current state was entered. */
  readonly since: number;
  /**
   * When the last request (or keepalive) that the server answered was sent (`Date.now()`): the
   * server heard from this session then or later, so it expires the session no earlier than this
   * + `ttlMs`, which is how locks and leaders give up in time. Not when an answer arrived: one can
   * wait in the socket while the process is frozen.
   */
  readonly lastContactAt: number;
  /** Subscribes to state changes; returns the unsubscribe function. */
  onStateChange(listener: (change: SessionStateChange) => void): () => void;
}

/** Options of {@link Backend.history}. */
export interface HistoryOptions extends RequestOptions {
  /** At most this many versions, newest first. */
  readonly limit: number;
}

/** What {@link Backend.history} found: a key's versions in its current life, newest first. */
export interface KeyHistory {
  /** The current entry first, then each earlier version of the same life, each as it was stored. */
  readonly entries: readonly Entry[];
  /**
   * Set when older versions of this life exist but the store no longer has them (etcd
   * compaction): the revision of the oldest entry that could not be read back from (its
   * predecessor is gone).
   */
  readonly compactedBefore?: bigint | undefined;
}

/** How one endpoint of the store answered a health probe (`client.inspect.endpoints()`). */
export interface EndpointStatus {
  /** `host:port` (for memory: the store's name). */
  readonly endpoint: string;
  readonly reachable: boolean;
  /** The server's version, when it tells it. */
  readonly version?: string | undefined;
  /** `leader`, `follower`, `standalone`, `observer`..., when the server tells it. */
  readonly role?: string | undefined;
  /** Time of the probe's round trip, ms. */
  readonly roundTripMs?: number | undefined;
  /**
   * The server's clock minus ours, ms (from an HTTP `Date` header: to the second), where the
   * server tells its time.
   */
  readonly clockOffsetMs?: number | undefined;
  /** Why it is unreachable, or what the probe could not learn. */
  readonly note?: string | undefined;
}

/** Limits the core checks before sending. */
export interface BackendLimits {
  /** Largest value the store accepts in one write, in bytes. */
  readonly maxValueBytes: number;
  /**
   * Most operations (compares and ops) one transaction may have (etcd: `--max-txn-ops`, 128 by
   * default; ZooKeeper and memory: no count limit, only `maxValueBytes`).
   */
  readonly maxTxnOps?: number | undefined;
}

/**
 * Optional abilities the core asks about before relying on one (everything else in this
 * interface every adapter must do):
 * - `txn`: multi-key transactions ({@link Backend.txn}); `updateLocked` fails `UNSUPPORTED`
 *   without it.
 * - `everyVersion`: a key watch delivers every version one by one (etcd, memory), never
 *   coalesced (ZooKeeper's notifications carry no data, so a re-read may skip), so the core may
 *   wait for the watch rather than jump ahead.
 * - `history`: past versions of a key can be read ({@link Backend.history}; etcd, until compaction).
 */
export type BackendFeature = 'txn' | 'everyVersion' | 'history';

/**
 * Count of requests sent to the store, by operation, for the cost contract. Each adapter
 * counts at its client seam: one increment per request that goes on the wire.
 */
export interface RequestCounters {
  /** Snapshot of the counts so far. */
  snapshot(): Readonly<Record<string, number>>;
  /**
   * Requests that failed so far, by operation and error code: the store refused them or gave no
   * answer in time (`TIMEOUT`, `CONNECTION`, `UNAUTHORIZED`, ...). Outcomes are not failures (a
   * lost compare, a missing key), and neither is a request its caller gave up on (`ABORTED`).
   */
  failures(): readonly RequestFailures[];
}

/** How many requests of one operation failed with one error code (see `Client.requestFailures()`). */
export interface RequestFailures {
  /** The operation, named as in the request counts (`range`, `txn`, `getData`, ...). */
  readonly operation: string;
  /** The error's {@link ErrorCode}. */
  readonly code: string;
  /** How many failed so. */
  readonly count: number;
}

/** The backend interface. One instance per client connection. */
export interface Backend {
  /** `'memory' | 'etcd' | 'zookeeper'`. */
  readonly kind: string;
  readonly limits: BackendLimits;
  readonly features: ReadonlySet<BackendFeature>;
  readonly counters: RequestCounters;
  readonly session: Session;

  /** Reads one key. */
  get(key: string, options?: GetOptions): Promise<Entry | undefined>;
  /** Reads a key's version and revisions without its value (etcd: keys-only range; ZooKeeper: exists). */
  stat(key: string, options?: GetOptions): Promise<EntryStat | undefined>;
  /**
   * Creates a key that must not exist (intermediate parents are the adapter's business).
   * When it exists: `{ created: false, current }` in the same round trip where the store allows.
   */
  create(key: string, value: Uint8Array, options?: CreateOptions): Promise<CreateResult>;
  /** Overwrites a key that has exactly `expectedVersion` (a compare-and-set; see {@link PutOptions.life}). */
  put(key: string, value: Uint8Array, options: PutOptions): Promise<PutResult>;
  /** Deletes a key (only at `expectedVersion` when given). True when this call deleted it. */
  delete(key: string, options?: RequestOptions & { readonly expectedVersion?: number }): Promise<boolean>;
  /** The direct children of `prefix`, ordered by create revision. */
  list(prefix: string, options?: ListOptions): Promise<Entry[]>;
  /**
   * How many direct children `prefix` has, in one request that sends no values (ZooKeeper: the
   * parent's `numChildren`; etcd: a count-only range, which counts keys at any depth under the
   * prefix, so use it on flat folders). A durable server bounds its queue with it.
   */
  count(prefix: string, options?: GetOptions): Promise<number>;
  /** A multi-key transaction (feature `txn`). */
  txn(txn: Txn, options?: RequestOptions): Promise<TxnResult>;
  /**
   * Every key below `prefix` at any depth, ordered by key (read-only tooling: listing structs,
   * lock queues, elections). etcd: one range; ZooKeeper: a walk of the tree, one listing per
   * node that has children (intermediate znodes are entries too, with empty values); memory: a
   * filter of its map.
   */
  scan(prefix: string, options?: ScanOptions): Promise<Entry[]>;
  /**
   * Past versions of `key` in its current life, newest first (feature `history`). etcd: one
   * range at each earlier revision, until version 1, `limit`, or the compacted boundary; stores
   * that keep no history (ZooKeeper) reject `UNSUPPORTED` saying why.
   */
  history(key: string, options: HistoryOptions): Promise<KeyHistory>;
  /** Probes every endpoint of the URL: reachable, server version, role, round trip, clock. */
  endpoints(options?: RequestOptions): Promise<EndpointStatus[]>;
  /**
   * How many operations the store counts for `txn` against `limits.maxTxnOps` (etcd: the larger
   * of its compares and its ops as the adapter sends them). Absent: compares + ops.
   */
  txnOps?(txn: Txn): number;
  /**
   * Watches a key or the children of a prefix. With `everyVersion` (etcd, memory) every change is
   * reported; without it (ZooKeeper) a prefix watch reports what each listing finds, so a child
   * created and removed between two listings may never be reported (what is reported ends as the
   * store is).
   */
  watch(target: WatchTarget, options?: WatchOptions): Watch;
  /** Ends the session (ephemerals go at once) and releases every resource. Idempotent. */
  close(): Promise<void>;
}

/** Options every adapter factory receives (already validated and defaulted by the core). */
export interface AdapterOptions {
  /** Session / lease time to live. */
  readonly sessionTtlMs: number;
  /** Deadline of the first connection. */
  readonly connectTimeoutMs: number;
  /** Deadline of every single request. */
  readonly requestTimeoutMs: number;
  readonly auth?: { readonly username: string; readonly password: string } | undefined;
  /** Shape already checked; the adapter checks the content (or rejects TLS `UNSUPPORTED`). */
  readonly tls?: TlsOptions | undefined;
  /** ZooKeeper's ACL of created nodes (checked by the core); other stores reject or ignore it. */
  readonly acl?: 'creator' | 'open' | readonly AclEntry[] | undefined;
  readonly logger: Logger;
  /** Largest value override (bytes); the adapter's own default otherwise. */
  readonly maxValueBytes?: number | undefined;
  /** Most operations per transaction override (etcd `--max-txn-ops`); the adapter's default otherwise. */
  readonly maxTxnOps?: number | undefined;
}

/** Where a URL points, parsed by the core. */
export interface BackendAddress {
  /** `memory`, `etcd` or `zk`. */
  readonly scheme: string;
  /** `host:port` pairs (for memory: the store name, possibly empty). */
  readonly hosts: readonly string[];
  /** The URL's path (a ZooKeeper chroot), '' when none. */
  readonly path: string;
  /** The URL's query parameters. */
  readonly params: Readonly<Record<string, string>>;
}

/** What an adapter module exports. */
export type BackendFactory = (address: BackendAddress, options: AdapterOptions) => Promise<Backend>;

/** A minimal structured logger; `console` fits. */
export interface Logger {
  /** Detail for diagnosing the library itself (retries, fallbacks, clean-up on close). */
  debug(message: string, fields?: Record<string, unknown>): void;
  /** A normal change of the connection's life (session states, a new session, a relist after compaction). */
  info(message: string, fields?: Record<string, unknown>): void;
  /** A failure the library recovered from or skipped (a watch resumed, a record ignored); worth a look if it repeats. */
  warn(message: string, fields?: Record<string, unknown>): void;
  /** A failure no call could report and no `'error'` handler took. */
  error(message: string, fields?: Record<string, unknown>): void;
}
