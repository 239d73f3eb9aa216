/**
 * The etcd adapter (`etcd://h1:2379,h2:2379`): the {@link Backend} on etcd v3 through etcd3's
 * low-level gRPC clients. Every write is one Txn (compare on the key's version or create
 * revision, with an else-branch that reads the current value, so a conflict costs no second
 * request); the session is a lease; watches resume by revision. See docs/ETCD.md.
 */
import type { ICompare, IKeyValue, IRequestOp, ITxnResponse } from 'etcd3';
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
  PutResult,
  PutOptions,
  RequestOptions,
  Session,
  Txn,
  TxnResult,
  Watch,
  WatchEvent,
  WatchOptions,
  WatchTarget,
} from '../../lib/backend.js';
import type { RequestCounters } from '../../lib/backend.js';
import { SharedStructError, isSharedStructError } from '../../lib/errors.js';
import { AsyncQueue } from '../../lib/util/async-queue.js';
import { byCreateRevision, childRange, isDirectChild, keyBytes, leaseHex, targetRange, toEntry, toStat, valueBytes } from './convert.js';
import { unreachableError } from './errors.js';
import { EtcdRpc } from './rpc.js';
import { LeaseSession } from './session.js';
import { EtcdWatch } from './watch.js';
import { probeEtcd } from './probe.js';
import { splitHosts, type AddressRules } from '../../lib/options.js';

/**
 * etcd refuses requests above `--max-request-bytes` (1.5 MiB by default). A value travels in a
 * Txn with its key, compares and the else-branch, so 16 KiB stay free for them.
 */
export const ETCD_MAX_VALUE_BYTES = 1_572_864 - 16 * 1024;
/** etcd's default `--max-txn-ops`: compares and ops of one Txn. */
export const ETCD_MAX_TXN_OPS = 128;

const FEATURES: ReadonlySet<BackendFeature> = new Set<BackendFeature>(['txn', 'everyVersion', 'history']);

/** `create_revision == 0`: the key does not exist. */
function absent(key: string): ICompare {
  return { key: keyBytes(key), target: 'Create', result: 'Equal', create_revision: 0 };
}

/** `create_revision > 0`: the key exists. */
function present(key: string): ICompare {
  return { key: keyBytes(key), target: 'Create', result: 'Greater', create_revision: 0 };
}

/** `version == v`: the key exists at exactly this dense version. */
function atVersion(key: string, version: number): ICompare {
  return { key: keyBytes(key), target: 'Version', result: 'Equal', version };
}

/** `create_revision == r`: the key is in the life that began at `r`. */
function createdAt(key: string, revision: bigint): ICompare {
  return { key: keyBytes(key), target: 'Create', result: 'Equal', create_revision: revision.toString() };
}

function rangeOp(key: string, keysOnly = false): IRequestOp {
  return { request_range: { key: keyBytes(key), ...(keysOnly && { keys_only: true }) } };
}

/** A range's head: etcd sorts by create revision itself and sends only the first `limit`. */
function headOf(limit: number): { limit: string; sort_target: 'Create'; sort_order: 'Ascend' } {
  return { limit: String(limit), sort_target: 'Create', sort_order: 'Ascend' };
}

/** The direct children of `prefix` among a range's kvs, in create order. */
function childEntries(prefix: string, kvs: readonly IKeyValue[]): Entry[] {
  return kvs.map((kv) => toEntry(kv)).filter((e) => isDirectChild(prefix, e.key)).sort(byCreateRevision);
}

/** The first kv of the range response at `index` of a Txn answer. */
function rangeResult(res: ITxnResponse, index: number) {
  return res.responses[index]?.response_range?.kvs[0];
}

function checkVersion(what: string, version: number): void {
  if (!Number.isSafeInteger(version) || version < 1) {
    throw new SharedStructError('INVALID_ARGUMENT', `${what}: expectedVersion must be an integer >= 1 (got ${version})`);
  }
}

/** A client's connection to etcd. Build it with {@link createBackend}. */
export class EtcdBackend implements Backend {
  readonly kind = 'etcd';
  readonly limits: BackendLimits;
  readonly features = FEATURES;
  readonly #rpc: EtcdRpc;
  readonly #lease: LeaseSession;
  readonly #options: AdapterOptions;
  readonly #watches = new Set<EtcdWatch>();
  readonly #singleEndpoint: boolean;
  readonly #hosts: readonly string[];
  #sequence = 0;
  #closing: Promise<void> | undefined;

  private constructor(rpc: EtcdRpc, lease: LeaseSession, options: AdapterOptions, hosts: readonly string[]) {
    this.#singleEndpoint = hosts.length === 1;
    this.#hosts = hosts;
    this.#rpc = rpc;
    this.#lease = lease;
    this.#options = options;
    this.limits = Object.freeze({ maxValueBytes: options.maxValueBytes ?? ETCD_MAX_VALUE_BYTES, maxTxnOps: options.maxTxnOps ?? ETCD_MAX_TXN_OPS });
  }

  /**
   * Connects: the first lease grant proves the cluster answers. Rejects `CONNECTION` saying what
   * each endpoint did: at once (after 250 ms, `UNREACHABLE_AFTER_MS`) when every endpoint refuses
   * the connection, fails TLS or does not resolve; after `connectTimeoutMs` at the latest. Bad TLS
   * material rejects `INVALID_ARGUMENT` before anything is sent.
   */
  static async connect(address: BackendAddress, options: AdapterOptions): Promise<EtcdBackend> {
    if (address.hosts.length === 0) {
      throw new SharedStructError('INVALID_ARGUMENT', 'an etcd URL needs at least one host:port (etcd://127.0.0.1:2379)');
    }
    if (options.acl !== undefined) {
      throw new SharedStructError('UNSUPPORTED', "option 'acl' is ZooKeeper's: etcd has no per-key ACLs; limit a user with a role granted readwrite on the namespace's prefix (etcdctl role grant-permission APP --prefix=true readwrite /NAMESPACE/; docs/SECURITY.md)");
    }
    const rpc = new EtcdRpc(address, options, { requestTimeoutMs: options.requestTimeoutMs });
    const startedAt = Date.now();
    try {
      const lease = await LeaseSession.start(rpc, {
        logger: options.logger,
        sessionTtlMs: options.sessionTtlMs,
        connectTimeoutMs: options.connectTimeoutMs,
        giveUp: () => rpc.unreachable(startedAt),
      });
      return new EtcdBackend(rpc, lease, options, address.hosts);
    } catch (err) {
      rpc.close();
      if (isSharedStructError(err, 'TIMEOUT', 'CONNECTION')) throw unreachableError(rpc.endpoints.all, { connectTimeoutMs: options.connectTimeoutMs, tls: options.tls !== undefined }, err);
      throw err;
    }
  }

  get counters(): RequestCounters {
    return this.#rpc.counters;
  }

  get session(): Session {
    return this.#lease.tracker;
  }

  /**
   * The current lease id (decimal, as etcd3 and etcdctl's `--lease` take it). Tests revoke it
   * with a raw client to expire the session for real; `session.id` is the same id in hex.
   */
  get leaseId(): string {
    return this.#lease.leaseId;
  }

  /** The watches this backend has open (tests read their resume / reset counts). */
  get watches(): ReadonlySet<EtcdWatch> {
    return this.#watches;
  }

  async get(key: string, options: GetOptions = {}): Promise<Entry | undefined> {
    const res = await this.#rpc.range(
      { key: keyBytes(key), ...this.#readMode(options) },
      { what: `etcd range ${key}`, signal: options.signal },
    );
    const kv = res.kvs[0];
    return kv && toEntry(kv);
  }

  async stat(key: string, options: GetOptions = {}): Promise<EntryStat | undefined> {
    const res = await this.#rpc.range(
      { key: keyBytes(key), keys_only: true, ...this.#readMode(options) },
      { what: `etcd range ${key}`, signal: options.signal },
    );
    const kv = res.kvs[0];
    return kv && toStat(kv);
  }

  async create(key: string, value: Uint8Array, options: CreateOptions = {}): Promise<CreateResult> {
    // A sequential key is unique by construction (lease id + counter); the create compare
    // still guards it, and a collision (a reused lease id) takes the next counter.
    for (let attempt = 0; ; attempt++) {
      const target = options.sequential ? this.#sequentialKey(key) : key;
      const lease = options.ephemeral ? this.#lease.leaseId : '0';
      const res = await this.#rpc.txn(
        {
          compare: [absent(target)],
          success: [{ request_put: { key: keyBytes(target), value: valueBytes(value), lease } }],
          failure: [rangeOp(target)],
        },
        { what: `etcd txn create ${target}`, signal: options.signal },
      );
      if (res.succeeded) {
        const revision = BigInt(res.header.revision);
        return {
          created: true,
          entry: Object.freeze({ key: target, value, version: 1, revision, createRevision: revision, ephemeral: lease !== '0' }),
        };
      }
      const kv = rangeResult(res, 0);
      if (options.sequential && attempt < 3) continue;
      if (!kv) throw new SharedStructError('CONNECTION', `etcd txn create ${target}: the compare failed but the key was not found`);
      return { created: false, current: toEntry(kv) };
    }
  }

  async put(key: string, value: Uint8Array, options: PutOptions): Promise<PutResult> {
    checkVersion(`etcd put ${key}`, options.expectedVersion);
    const life = options.life;
    if (life) {
      // The life is known: compare it too (no ABA), and the answer's header revision is all we
      // need to build the new entry, so no read-back in the Txn.
      const res = await this.#rpc.txn(
        {
          compare: [atVersion(key, options.expectedVersion), createdAt(key, life.createRevision)],
          success: [{ request_put: { key: keyBytes(key), value: valueBytes(value), ignore_lease: true } }],
          failure: [rangeOp(key)],
        },
        { what: `etcd txn put ${key}`, signal: options.signal },
      );
      if (!res.succeeded) {
        const kv = rangeResult(res, 0);
        return { ok: false, current: kv && toEntry(kv) };
      }
      const revision = BigInt(res.header.revision);
      return { ok: true, entry: Object.freeze({ key, value, version: options.expectedVersion + 1, revision, createRevision: life.createRevision, ephemeral: life.ephemeral }) };
    }
    const res = await this.#rpc.txn(
      {
        compare: [atVersion(key, options.expectedVersion)],
        // ignore_lease keeps an ephemeral key on its lease (a plain put would detach it), as
        // ZooKeeper's setData keeps a node ephemeral. The keys-only range after the put reads
        // the new version and revisions inside the same Txn.
        success: [{ request_put: { key: keyBytes(key), value: valueBytes(value), ignore_lease: true } }, rangeOp(key, true)],
        failure: [rangeOp(key)],
      },
      { what: `etcd txn put ${key}`, signal: options.signal },
    );
    if (res.succeeded) {
      const kv = rangeResult(res, 1);
      if (!kv) throw new SharedStructError('CONNECTION', `etcd txn put ${key}: the written key was not read back`);
      return { ok: true, entry: toEntry(kv, value) };
    }
    const kv = rangeResult(res, 0);
    return { ok: false, current: kv && toEntry(kv) };
  }

  async delete(key: string, options: RequestOptions & { readonly expectedVersion?: number } = {}): Promise<boolean> {
    if (options.expectedVersion === undefined) {
      // Retried on connection errors (see EtcdRpc.deleteRange): if an attempt whose answer was
      // lost had deleted the key, the retry finds nothing and this returns false.
      const res = await this.#rpc.deleteRange({ key: keyBytes(key) }, { what: `etcd deleteRange ${key}`, signal: options.signal });
      return Number(res.deleted) > 0;
    }
    checkVersion(`etcd delete ${key}`, options.expectedVersion);
    const res = await this.#rpc.txn(
      { compare: [atVersion(key, options.expectedVersion)], success: [{ request_delete_range: { key: keyBytes(key) } }], failure: [] },
      { what: `etcd txn delete ${key}`, signal: options.signal },
    );
    return res.succeeded;
  }

  async list(prefix: string, options: ListOptions = {}): Promise<Entry[]> {
    const limited = options.limit === undefined ? {} : headOf(options.limit);
    const res = await this.#rpc.range(
      { ...childRange(prefix), ...this.#readMode(options), ...limited },
      { what: `etcd range ${prefix}/`, signal: options.signal },
    );
    return childEntries(prefix, res.kvs);
  }

  async scan(prefix: string, options: ScanOptions = {}): Promise<Entry[]> {
    const res = await this.#rpc.range({ ...childRange(prefix), ...this.#readMode(options) }, { what: `etcd range ${prefix}/ (scan)`, signal: options.signal });
    return res.kvs.map((kv) => toEntry(kv)).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async history(key: string, options: HistoryOptions): Promise<KeyHistory> {
    const what = `etcd history ${key}`;
    const current = (await this.#rpc.range({ key: keyBytes(key) }, { what, signal: options.signal })).kvs[0];
    if (!current) return { entries: [] };
    const entries = [toEntry(current)];
    // Each earlier version is the key as of the revision before the one that replaced it.
    while (entries.length < options.limit) {
      const last = entries[entries.length - 1]!;
      if (last.version <= 1) break;
      let res;
      try {
        res = await this.#rpc.range({ key: keyBytes(key), revision: String(last.revision - 1n) }, { what, signal: options.signal });
      } catch (err) {
        if (isSharedStructError(err) && (err.details as { compacted?: boolean } | undefined)?.compacted === true) return { entries, compactedBefore: last.revision };
        throw err;
      }
      const kv = res.kvs[0];
      if (!kv || BigInt(kv.create_revision) !== last.createRevision) break;
      entries.push(toEntry(kv));
    }
    return { entries };
  }

  endpoints(options: RequestOptions = {}): Promise<EndpointStatus[]> {
    return Promise.all(this.#hosts.map((h) => probeEtcd(h, this.#options.tls, this.#options.requestTimeoutMs, options.signal)));
  }

  async count(prefix: string, options: GetOptions = {}): Promise<number> {
    const res = await this.#rpc.countRange({ ...childRange(prefix), ...this.#readMode(options) }, { what: `etcd count ${prefix}/`, signal: options.signal });
    return Number(res.count);
  }

  /** etcd counts compares and success ops apart (each against `--max-txn-ops`); see {@link txn} for the mapping. */
  txnOps(txn: Txn): number {
    let compares = txn.ops.length;
    for (const c of txn.compare) compares += 'version' in c && c.createRevision !== undefined ? 2 : 1;
    // Each op, a read-back of each put, and the range of `list` when asked.
    const success = txn.ops.length + txn.ops.filter((op) => op.op === 'put').length + (txn.list ? 1 : 0);
    return Math.max(compares, success);
  }

  async txn(txn: Txn, options: RequestOptions = {}): Promise<TxnResult> {
    // A sequential create gets its unique key here (ordered by create revision, as create() does).
    const ops = txn.ops.map((op) => (op.op === 'create' && op.sequential ? { ...op, key: this.#sequentialKey(op.key) } : op));
    const compare: ICompare[] = [];
    for (const c of txn.compare) {
      if ('version' in c) {
        checkVersion(`etcd txn compare ${c.key}`, c.version);
        compare.push(atVersion(c.key, c.version));
        if (c.createRevision !== undefined) compare.push(createdAt(c.key, c.createRevision));
      } else {
        compare.push(present(c.key));
      }
    }
    const success: IRequestOp[] = [];
    for (const op of ops) {
      if (op.op === 'create') {
        compare.push(absent(op.key));
        success.push({ request_put: { key: keyBytes(op.key), value: valueBytes(op.value), lease: op.ephemeral ? this.#lease.leaseId : '0' } });
        continue;
      }
      if (op.expectedVersion !== undefined) {
        checkVersion(`etcd txn ${op.op} ${op.key}`, op.expectedVersion);
        compare.push(atVersion(op.key, op.expectedVersion));
      } else {
        compare.push(present(op.key));
      }
      success.push(
        op.op === 'put'
          ? { request_put: { key: keyBytes(op.key), value: valueBytes(op.value), ignore_lease: true } }
          : { request_delete_range: { key: keyBytes(op.key) } },
      );
    }
    // A put's new version and create revision are read back keys-only after every write (a
    // range inside a Txn sees the Txn's own writes); `readBack` maps an op to its read's index.
    const readBack = new Map<number, number>();
    ops.forEach((op, i) => {
      if (op.op !== 'put') return;
      readBack.set(i, success.length);
      success.push(rangeOp(op.key, true));
    });
    const listAt = success.length;
    if (txn.list) success.push({ request_range: { ...childRange(txn.list.prefix), ...headOf(txn.list.limit) } });
    const res = await this.#rpc.txn({ compare, success, failure: [] }, { what: `etcd txn (${ops.length} ops)`, signal: options.signal });
    if (!res.succeeded) return { ok: false };
    const revision = BigInt(res.header.revision);
    const entries = ops.map((op, i): Entry | undefined => {
      if (op.op === 'delete') return undefined;
      if (op.op === 'create') {
        return Object.freeze({ key: op.key, value: op.value, version: 1, revision, createRevision: revision, ephemeral: op.ephemeral === true });
      }
      const kv = rangeResult(res, readBack.get(i)!);
      if (!kv) throw new SharedStructError('CONNECTION', `etcd txn: the written key ${op.key} was not read back`);
      return toEntry(kv, op.value);
    });
    if (!txn.list) return { ok: true, entries };
    return { ok: true, entries, listed: { entries: childEntries(txn.list.prefix, res.responses[listAt]?.response_range?.kvs ?? []), revision } };
  }

  watch(target: WatchTarget, options: WatchOptions = {}): Watch {
    if (this.#rpc.closed || this.#closing) {
      const queue = new AsyncQueue<WatchEvent>();
      queue.fail(new SharedStructError('CLOSED', 'etcd watch: the client is closed'));
      return { [Symbol.asyncIterator]: () => queue[Symbol.asyncIterator](), close: () => queue.end() };
    }
    const watch = new EtcdWatch(
      {
        rpc: this.#rpc,
        logger: this.#options.logger,
        relist: (t, signal) => this.#relist(t, signal),
        probe: async (t, signal) => {
          await this.#rpc.range({ ...targetRange(t), count_only: true }, { what: 'etcd range (watch permission probe)', signal });
        },
        onDone: (w) => this.#watches.delete(w),
      },
      target,
      options,
    );
    if (!watch.ended) this.#watches.add(watch);
    return watch;
  }

  /** Revokes the lease (ephemerals vanish at once), ends every watch, closes the channels. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      for (const w of [...this.#watches]) w.close();
      await this.#lease.close();
      this.#rpc.close();
    })();
    return this.#closing;
  }

  /** `[Symbol.asyncDispose]` for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /**
   * How a read without `consistent` is served. With one endpoint: serializable, answered by the
   * member this client talks to, which has applied this client's own writes. With several,
   * etcd3 picks a member at random per call, and a member that has not applied our last write
   * yet would hide it (a lock queue would think our own key gone): linearizable then.
   */
  #readMode(options: GetOptions): { serializable?: true } {
    return !options.consistent && this.#singleEndpoint ? { serializable: true } : {};
  }

  /** The target's current entries and the revision they are at, in one linearizable range. */
  async #relist(target: WatchTarget, signal: AbortSignal): Promise<{ entries: Entry[]; revision: bigint }> {
    if ('key' in target) {
      const res = await this.#rpc.range({ key: keyBytes(target.key) }, { what: `etcd range ${target.key}`, signal });
      return { entries: res.kvs.map((kv) => toEntry(kv)), revision: BigInt(res.header.revision) };
    }
    const res = await this.#rpc.range(childRange(target.prefix), { what: `etcd range ${target.prefix}/`, signal });
    const entries = res.kvs.map((kv) => toEntry(kv)).filter((e) => isDirectChild(target.prefix, e.key)).sort(byCreateRevision);
    return { entries, revision: BigInt(res.header.revision) };
  }

  /** `<key><lease hex>-<counter>`: unique per lease, ordered by create revision like every key. */
  #sequentialKey(key: string): string {
    this.#sequence += 1;
    return `${key}${leaseHex(this.#lease.leaseId)}-${String(this.#sequence).padStart(10, '0')}`;
  }
}

/**
 * The adapter factory the core loads for `etcd://` URLs.
 *
 * @example
 * ```ts
 * const backend = await createBackend(
 *   { scheme: 'etcd', hosts: ['127.0.0.1:2379'], path: '', params: {} },
 *   { sessionTtlMs: 10_000, connectTimeoutMs: 5000, requestTimeoutMs: 5000, logger: console },
 * );
 * ```
 */
export const createBackend: BackendFactory = (address, options) => EtcdBackend.connect(address, options);

/** `etcd://h1[:2379],h2[:2379]`: no path (the key prefix is the client's `namespace`). */
export const addressRules: AddressRules = (parts) => {
  const hosts = splitHosts(parts, 2379);
  if (parts.path !== '' && parts.path !== '/') {
    throw new SharedStructError('INVALID_ARGUMENT', `url '${parts.url}': etcd URLs take no path; use the 'namespace' option`);
  }
  return { scheme: 'etcd', hosts, path: '', params: parts.params };
};

