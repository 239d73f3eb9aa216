/**
 * `SharedStruct<T>`: the cached, watched, compare-and-swap JSON struct. This file is its public
 * surface; the cache's rules are in struct/cache.ts, the one way into it in
 * struct/local-writes.ts, what keeps it current in struct/pump.ts.
 */
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import type { Backend, Entry, Listed, Txn, TxnCompare, TxnOp, WatchEvent } from './backend.js';
import { SharedStructError, abortError, throwIfAborted } from './errors.js';
import { FanOut, changeEvent, type ChangeEvent, type ChangeOrigin } from './fanout.js';
import type { DeepReadonly } from './json.js';
import { acquireLock } from './lock.js';
import type { ResolvedOpenOptions } from './options.js';
import { exponentialBackoff, type BackoffPolicy } from './retry.js';
import { StructCache } from './struct/cache.js';
import { LocalWrites } from './struct/local-writes.js';
import { StructPump } from './struct/pump.js';
import { undraft } from './struct/drafts.js';
import { storedLayout, type FieldsLayout } from './struct/fields.js';
import { StructValues, type Cached, type Prepared } from './struct/values.js';
import { sleep } from './util/abort.js';
import { TypedEmitter } from './util/emitter.js';
import { holding } from './util/keepalive.js';
import { outcomeOf, type Telemetry } from './telemetry.js';
import type { Logger } from './backend.js';

/** What `stat()` reports about a struct instance. */
export interface StructStat {
  /** Version of the cached value (0 when the struct is deleted). */
  readonly version: number;
  /** Store revision of the cached value, decimal. */
  readonly revision: string;
  /** When the cache was last confirmed equal to the store (`Date.now()` ms). */
  readonly confirmedAt: number;
  /** Milliseconds since then. */
  readonly stalenessMs: number;
  /** `open`, `deleted` (the struct was removed from the store) or `closed`. */
  readonly state: 'open' | 'deleted' | 'closed';
}

/** A registration under a group or a struct's `listeners`. */
export interface Member {
  readonly id: string;
  readonly data: unknown;
  /** When the member registered (`Date.now()` ms of its process). */
  readonly since: number;
}

/** Events of a {@link SharedStruct}. */
export interface StructEvents<T> {
  /** A committed change (see {@link ChangeEvent}). */
  change: ChangeEvent<T>;
  /** Something no call could report: a corrupt remote value, a failed background refresh. */
  error: SharedStructError;
  /** The struct was deleted from the store. */
  deleted: { readonly revision: string };
}

/** Options of {@link SharedStruct.update}. */
export interface UpdateOptions {
  readonly signal?: AbortSignal;
  /** Retries after conflicts before rejecting `CONFLICT` (default 10). */
  readonly maxRetries?: number;
}

/** Options of {@link SharedStruct.changes}. */
export interface ChangesOptions {
  readonly signal?: AbortSignal;
  /** Start with one event carrying the current value (`previousVersion` 0, origin `resync`). */
  readonly includeInitial?: boolean;
  /** Overrides the struct's `maxBufferedEvents` for this subscriber. */
  readonly maxBuffered?: number;
}

/** Result of a successful write. */
export interface WriteResult<T> {
  /** The value now stored, deep-frozen. */
  readonly value: DeepReadonly<T>;
  readonly version: number;
}

/** What `updateLocked`'s `fn` gets besides the draft: the write lock it runs under. */
export interface WriteLockInfo {
  /** The lock's fencing token (decimal; compare as BigInt). */
  readonly token: string;
  /** Aborted `LOCK_LOST` as soon as the lock may be gone. */
  readonly signal: AbortSignal;
  /** Checks the loss deadline on the spot: test it right before each guarded step. */
  readonly held: boolean;
}

/** A lost compare-and-swap: what the store held, and when and after how many lives it was asked. */
interface Conflict {
  readonly entry: Entry | undefined;
  readonly sentAt: number;
  readonly lives: number;
}

/** What the client needs of a struct, whatever its `T`. */
export interface StructHandle {
  readonly name: string;
  stat(): StructStat;
  /** Events queued and not yet taken by the fullest subscriber. */
  backlog(): number;
  close(): Promise<void>;
  onNewSession(): void;
}

/** Internal wiring a struct receives from its client. */
export interface StructContext {
  readonly backend: Backend;
  readonly logger: Logger;
  /** The client's instruments. */
  readonly telemetry: Telemetry;
  /** Registers an ephemeral key that the client re-creates on every new session. */
  register(key: string, value: unknown, signal?: AbortSignal): Promise<() => Promise<void>>;
  /** Lists a registration folder. */
  members(prefix: string, signal?: AbortSignal): Promise<Member[]>;
  /** Called when the struct closes. */
  onClose(struct: StructHandle): void;
}

/**
 * A JSON struct shared through the store, cached locally and kept fresh by a watch.
 *
 * Reads come from the cache (`read`, `readDirty`) or the store (`readConsistent`); writes are
 * compare-and-swap on the version and touch the cache only after the store committed; every
 * committed version reaches every subscriber once, in order, as Added / Modified / Removed.
 * A pending call keeps the process alive; an open struct alone does not.
 *
 * @example
 * ```ts
 * const flags = await client.open<Flags>('flags', { initial: { beta: false } });
 * flags.on('change', (ev) => console.log(ev.version, ev.changes));
 * await flags.update((d) => { d.beta = true; });
 * flags.read().beta; // true
 * ```
 */
export class SharedStruct<T> extends TypedEmitter<StructEvents<T>> implements AsyncDisposable, StructHandle {
  /** The struct's name (without namespace). */
  readonly name: string;
  /** This instance's listener id: the `label` it was opened with, or a random UUID. */
  readonly id: string;
  #created = false;
  readonly #ctx: StructContext;
  readonly #backend: Backend;
  readonly #options: ResolvedOpenOptions<T>;
  readonly #key: string;
  readonly #listenersPrefix: string;
  readonly #writeLockPrefix: string;
  readonly #backoff: BackoffPolicy;
  readonly #values: StructValues<T>;
  readonly #cache: StructCache<T>;
  readonly #writes = new LocalWrites();
  readonly #pump: StructPump;
  readonly #fanout: FanOut<T>;
  /** Aborts the background requests (refresh) on close. */
  readonly #closer = new AbortController();
  #closed = false;
  /** The revision the watch resumes after: the newest it delivered. */
  #watchRevision = 0n;
  #refreshing: Promise<void> | undefined;
  #unregister: (() => Promise<void>) | undefined;
  /** Layout 'fields': the per-field store (undefined for the value layout). */
  readonly #fields: FieldsLayout<T> | undefined;
  /** Layout 'fields': watch events are applied one after the other (each may read fields). */
  #watchChain: Promise<void> = Promise.resolve();

  /** @internal Use `client.open()`. */
  constructor(ctx: StructContext, name: string, key: string, options: ResolvedOpenOptions<T>) {
    super((err) => ctx.logger.error(`unhandled error in struct '${name}'`, { err }));
    this.#ctx = ctx;
    this.#backend = ctx.backend;
    this.name = name;
    this.id = options.label ?? randomUUID();
    this.#key = `${key}/payload`;
    this.#listenersPrefix = `${key}/listeners`;
    this.#writeLockPrefix = `${key}/write_lock`;
    this.#options = options;
    this.#backoff = options.backoff ?? exponentialBackoff();
    this.#values = new StructValues<T>(name, options.codec, options.schema, { maxValueBytes: this.#backend.limits.maxValueBytes, maxTxnOps: this.#backend.limits.maxTxnOps, txnOps: this.#backend.txnOps?.bind(this.#backend), kind: this.#backend.kind }, { layout: options.layout, key });
    this.#fields = this.#values.fields;
    this.#fanout = new FanOut<T>(() => ctx.telemetry.overflowed(name));
    this.#cache = new StructCache<T>(this.#values, {
      change: (origin, coalesced, event) => {
        ctx.telemetry.event(name, origin, coalesced);
        if (origin === 'resync') {
          const e = event();
          ctx.logger.info(`struct '${name}' resynced from version ${e.previousVersion} to ${e.version}: its cache lost continuity, subscribers get the net change`, { struct: name, version: e.version, previousVersion: e.previousVersion });
        }
        if (this.#fanout.size > 0) this.#fanout.publish(event());
        if (this.listenerCount('change') > 0) this.emit('change', event());
      },
      deleted: (revision) => this.emit('deleted', { revision: revision.toString() }),
      error: (err) => {
        // Logged either way: as a warning when the app handles 'error', else as unhandled.
        if (this.listenerCount('error') > 0) ctx.logger.warn(`struct '${name}': ${err.message}`, { struct: name, code: err.code });
        this.emit('error', err);
      },
    });
    const intervalMs = Math.max(1, Math.min(options.refreshIntervalMs, Math.floor(options.maxStalenessMs / 2)));
    this.#pump = new StructPump(
      this.#backend,
      this.#key,
      ctx.logger,
      {
        name,
        afterRevision: () => this.#watchRevision,
        onWatchEvent: (event) => this.#onWatchEvent(event),
        refresh: (resync) => this.#refresh(resync),
        onError: (err) => this.emit('error', err),
      },
      intervalMs,
    );
  }

  /** @internal Loads or creates the struct, registers the listener and starts the watch. */
  async start(signal?: AbortSignal): Promise<void> {
    const sentAt = Date.now();
    const entry = await this.#load(signal);
    const decoded = this.#values.decodeStored(entry);
    if ('error' in decoded) throw decoded.error;
    this.#cache.init(entry, decoded.value, sentAt);
    this.#watchRevision = entry.revision;
    const record: Record<string, unknown> = { id: this.id, host: hostname(), pid: process.pid, since: Date.now() };
    if (this.#options.data !== undefined) record.data = this.#options.data;
    this.#unregister = await this.#ctx.register(`${this.#listenersPrefix}/${this.id}`, record, signal);
    this.#pump.start();
  }

  /** The stored entry to start from: read, or created from `initial` when absent. */
  async #load(signal: AbortSignal | undefined): Promise<Entry> {
    for (let attempt = 0; ; attempt++) {
      let entry = await this.#backend.get(this.#key, { signal, consistent: true });
      if (!entry) {
        if (!this.#options.hasInitial) {
          throw new SharedStructError('NOT_FOUND', `struct '${this.name}' does not exist; pass 'initial' to create it, or use client.expect() to wait for it`);
        }
        this.#created = false;
        entry = this.#fields ? await this.#createFields(this.#fields, signal) : await this.#createValue(signal);
      }
      const stored = storedLayout(entry.value);
      if (stored !== this.#options.layout) {
        throw new SharedStructError('INVALID_ARGUMENT', `struct '${this.name}' is stored with layout '${stored}', not '${this.#options.layout}'; open it with { layout: '${stored}' }`, {
          details: { layout: stored },
        });
      }
      if (!this.#fields || this.#fields.assembled(entry)) return entry;
      const read = await this.#fields.read(this.#backend, undefined, signal);
      if (read) return read;
      // Deleted while its fields were read: start again (and create it, with 'initial').
      if (attempt >= 10) throw new SharedStructError('CONFLICT', `struct '${this.name}' kept being deleted while it was opened; open it again later`);
    }
  }

  async #createValue(signal: AbortSignal | undefined): Promise<Entry> {
    const bytes = this.#values.encode(this.#options.initial);
    const created = await this.#backend.create(this.#key, bytes, { signal });
    this.#created = created.created;
    return created.created ? created.entry : created.current;
  }

  /** Layout 'fields': creates the head and every field in one transaction (or finds the winner's). */
  async #createFields(fields: FieldsLayout<T>, signal: AbortSignal | undefined): Promise<Entry> {
    const { ops, value } = fields.create(this.#options.initial);
    // ZooKeeper creates a child only under an existing parent: the folder first (once, ever).
    await this.#backend.create(fields.folder, new Uint8Array(0), { signal });
    for (let attempt = 0; attempt < 10; attempt++) {
      const r = await this.#backend.txn({ compare: [], ops }, { signal });
      if (r.ok) {
        const entry = r.entries[0]!;
        fields.remember(entry, value);
        this.#created = true;
        return entry;
      }
      const winner = await this.#backend.get(this.#key, { signal, consistent: true });
      if (winner) return winner;
    }
    throw new SharedStructError('CONFLICT', `struct '${this.name}' could not be created: its field keys exist without a head (left by a foreign writer); delete ${fields.folder} and open it again`);
  }

  /** A consistent read of the struct (layout 'fields': the head, and the fields changed since the cache). */
  #readStruct(signal: AbortSignal | undefined): Promise<Entry | undefined> {
    if (this.#fields) return this.#fields.read(this.#backend, this.#cache.current, signal);
    return this.#backend.get(this.#key, { signal, consistent: true });
  }

  /** The ops that write `prepared` (the payload's put, or the head's and the fields'). */
  #writeOps(prepared: Prepared<T>): readonly TxnOp[] {
    return prepared.ops ?? [{ op: 'put', key: this.#key, value: prepared.bytes }];
  }

  // ---- reads ---------------------------------------------------------------------------------

  /**
   * The cached value, deep-frozen, with no I/O and no copy. Throws `STALE_READ` when the cache
   * was not confirmed equal to the store within `maxStalenessMs`, and `NOT_FOUND` after a delete.
   */
  read(): DeepReadonly<T> {
    const cache = this.#readable();
    const staleness = Date.now() - this.#cache.confirmedAt;
    if (staleness > this.#options.maxStalenessMs) {
      throw new SharedStructError(
        'STALE_READ',
        `struct '${this.name}' was last confirmed ${staleness} ms ago (maxStalenessMs ${this.#options.maxStalenessMs}): the store has not answered since; use readDirty() to accept an older value, or readConsistent() to wait for the store`,
      );
    }
    return cache.value as DeepReadonly<T>;
  }

  /** The cached value, whatever its age. Throws only `NOT_FOUND` (deleted) or `CLOSED`. */
  readDirty(): DeepReadonly<T> {
    return this.#readable().value as DeepReadonly<T>;
  }

  /**
   * A linearizable read from the store. When the store is newer than the cache, the cache is
   * updated and the change events are delivered before this resolves; when nothing changed, the
   * value is neither decoded nor diffed.
   */
  readConsistent(options: { signal?: AbortSignal } = {}): Promise<DeepReadonly<T>> {
    return holding(() =>
      this.#ctx.telemetry.span('readConsistent', { 'sharedstruct.struct': this.name }, async () => {
        this.#ensureOpen();
        throwIfAborted(options.signal);
        const sentAt = Date.now();
        const lives = this.#cache.lives;
        const entry = await this.#readStruct(options.signal);
        await this.#ingestRead(entry, 'remote', sentAt, lives);
        return this.#readable().value as DeepReadonly<T>;
      }),
    );
  }

  /** @internal Events queued and not yet taken by the fullest subscriber (telemetry). */
  backlog(): number {
    return this.#fanout.backlog();
  }

  /**
   * Whether this `open()` created the struct from `initial`: `true` only for the one instance whose
   * create won (any number may race; the store decides, so exactly one of them sees `true` per
   * life of the struct). `false` when the struct was there already, including when a racing
   * creator stored the very same value first.
   */
  get created(): boolean {
    return this.#created;
  }

  /** Version, revision and freshness of the cache. */
  stat(): StructStat {
    const cache = this.#cache.current;
    const confirmedAt = this.#cache.confirmedAt;
    return Object.freeze({
      version: cache?.version ?? 0,
      revision: (cache?.revision ?? 0n).toString(),
      confirmedAt,
      stalenessMs: Date.now() - confirmedAt,
      state: this.#state(),
    });
  }

  // ---- writes --------------------------------------------------------------------------------

  /**
   * Changes the struct with compare-and-swap. `fn` gets a mutable copy-on-write draft of the
   * cached value (only what it writes is copied; the draft is revoked when `fn`'s write is
   * prepared, so keep no reference to it): mutate it, or return the next value (anything but
   * `undefined` replaces the draft, `null` included). On a conflict
   * the cache is refreshed and `fn` runs again, after a jittered backoff, up to `maxRetries`
   * times; then `CONFLICT`. A result equal to the current value writes nothing.
   */
  update(fn: (draft: T) => T | void | Promise<T | void>, options: UpdateOptions = {}): Promise<WriteResult<T>> {
    return holding(async () => {
      const r = await this.#writeLoop('update', async (makeDraft) => {
        const draft = makeDraft();
        const out = await fn(draft);
        return { next: out === undefined ? draft : out, result: undefined };
      }, options);
      return r.written;
    });
  }

  /** Replaces the value (the `update` loop with a fixed value). */
  set(value: T, options: UpdateOptions = {}): Promise<WriteResult<T>> {
    return holding(async () => {
      if (value === undefined) throw new SharedStructError('INVALID_VALUE', 'set() needs a value; undefined is not JSON (use delete() to remove the struct)');
      const r = await this.#writeLoop('set', () => Promise.resolve({ next: value, result: undefined }), options);
      return r.written;
    });
  }

  /**
   * `fn(draft)` returns `[result, next]` (it may be async); `next` is written with the same
   * compare-and-swap loop as `update`, and `result` is what this resolves.
   */
  modify<R>(fn: (draft: T) => readonly [R, T] | Promise<readonly [R, T]>, options: UpdateOptions = {}): Promise<R> {
    return holding(async () => {
      const r = await this.#writeLoop('modify', async (makeDraft) => {
        const out = await fn(makeDraft());
        if (!Array.isArray(out) || out.length !== 2) {
          throw new SharedStructError('INVALID_ARGUMENT', 'modify(fn): fn must return [result, next]');
        }
        return { next: out[1], result: out[0] };
      }, options);
      return r.result;
    });
  }

  /**
   * One compare-and-swap attempt: writes `value` only if the store still holds
   * `expectedVersion` of the life this instance has cached; otherwise rejects `CONFLICT` and
   * leaves cache and events untouched.
   */
  compareAndSet(expectedVersion: number, value: T, options: { signal?: AbortSignal } = {}): Promise<WriteResult<T>> {
    return holding(async () => {
      this.#ensureOpen();
      throwIfAborted(options.signal);
      if (!Number.isInteger(expectedVersion) || expectedVersion < 1) {
        throw new SharedStructError('INVALID_ARGUMENT', `expectedVersion must be an integer >= 1, got ${String(expectedVersion)}`);
      }
      let cache = this.#cache.current;
      let prepared: Prepared<T>;
      if (this.#fields) {
        // Field by field, a write is made against the value it replaces: that of expectedVersion.
        if (cache?.version !== expectedVersion) await this.readConsistent(options.signal ? { signal: options.signal } : {});
        cache = this.#cache.current;
        if (cache?.version !== expectedVersion) {
          throw new SharedStructError('CONFLICT', `struct '${this.name}' is no longer at version ${expectedVersion} (now ${cache?.version ?? 'deleted'}); read it again and retry, or use update()`);
        }
        prepared = this.#values.prepareForced(cache, value, expectedVersion + 1);
      } else {
        const life = cache && { createRevision: cache.createRevision, ephemeral: cache.ephemeral };
        prepared = this.#values.prepareBlind(value, life);
      }
      const r = await this.#put(expectedVersion, prepared, options.signal);
      if ('conflict' in r) {
        await this.#settle(r.conflict);
        throw new SharedStructError('CONFLICT', `struct '${this.name}' is no longer at version ${expectedVersion} (now ${this.#cache.current?.version ?? 'deleted'}); read it again and retry, or use update()`);
      }
      return r;
    });
  }

  /**
   * Holds the struct's distributed write lock (`<name>/write_lock`) while `fn` runs on the fresh
   * value (`fn` may be async and have side effects; it gets the lock's fencing `token` and lost
   * `signal` to pass to them, and `held`, which checks the loss deadline on the spot: test it
   * before each guarded step, since a process that resumes from a freeze runs its own code
   * before any timer can abort `signal`), then writes in one guarded request that
   * commits only if this holder still owns the lock (etcd: a Txn comparing the lock key;
   * ZooKeeper: a multi with a check on the lock node) and the version did not move. If the lock
   * was lost, nothing is written and it rejects `LOCK_LOST`; if a writer that does not take the
   * lock (`update`, `set`) changed the struct meanwhile, `CONFLICT` — `fn` is not re-run, because
   * its side effects already happened. The lock is always released.
   *
   * @example
   * ```ts
   * await jobs.updateLocked(async (d) => {
   *   d.lastRun = await runReport();     // runs on one node at a time
   * }, { lockTimeoutMs: 30_000 });
   * ```
   */
  updateLocked(fn: (draft: T, lock: WriteLockInfo) => T | void | Promise<T | void>, options: { lockTimeoutMs?: number; signal?: AbortSignal } = {}): Promise<WriteResult<T>> {
    return holding(() => this.#updateLocked(fn, options));
  }

  async #updateLocked(fn: (draft: T, lock: WriteLockInfo) => T | void | Promise<T | void>, options: { lockTimeoutMs?: number; signal?: AbortSignal }): Promise<WriteResult<T>> {
    this.#ensureOpen();
    throwIfAborted(options.signal);
    if (!this.#backend.features.has('txn')) {
      throw new SharedStructError('UNSUPPORTED', `updateLocked() needs multi-key transactions, which the ${this.#backend.kind} backend does not offer`);
    }
    const lock = await acquireLock(this.#backend, `write lock of '${this.name}'`, this.#writeLockPrefix, {
      ...(options.lockTimeoutMs !== undefined && { waitMs: options.lockTimeoutMs }),
      ...(options.signal && { signal: options.signal }),
    });
    try {
      await this.readConsistent(options.signal ? { signal: options.signal } : {});
      const cache = this.#readable();
      const draft = this.#values.draft(cache);
      const out = await fn(draft, {
        token: lock.token,
        signal: lock.signal,
        get held() {
          return lock.held;
        },
      });
      const next = out === undefined ? draft : out;
      // `held`, not `signal.aborted`: after a freeze, the deadline has passed but no timer has run.
      if (!lock.held) throw abortError(lock.signal);
      throwIfAborted(options.signal);
      const expectedVersion = this.#cache.writeBase(cache);
      const prepared = this.#values.prepare(cache, draft, next, expectedVersion + 1);
      if (!prepared) return { value: cache.value as DeepReadonly<T>, version: cache.version };
      return await this.#writes.writing(expectedVersion + 1, async () => {
        const sentAt = Date.now();
        const r = await this.#backend.txn(
          {
            compare: [
              { key: lock.key, exists: true },
              { key: this.#key, version: expectedVersion, createRevision: cache.createRevision },
            ],
            ops: this.#writeOps(prepared),
          },
          { signal: options.signal },
        );
        if (r.ok) return this.#committed(r.entries[0]!, prepared, sentAt);
        const lockKept = !lock.signal.aborted && (await this.#backend.stat(lock.key)) !== undefined;
        if (!lockKept) throw new SharedStructError('LOCK_LOST', `the write lock of '${this.name}' was lost before the commit, so nothing was written`);
        throw new SharedStructError('CONFLICT', `struct '${this.name}' was changed by a writer that does not take the write lock, so nothing was written; use updateLocked() in every writer of this struct`);
      });
    } catch (err) {
      // After a lost guarded write, bring the cache up to date (outside the write's hold).
      if (err instanceof SharedStructError && err.code === 'CONFLICT') await this.readConsistent().catch(() => {});
      throw err;
    } finally {
      await lock.release();
    }
  }

  /** Deletes the struct from the store. Other instances get a `deleted` event. */
  delete(options: { signal?: AbortSignal } = {}): Promise<void> {
    return holding(async () => {
      this.#ensureOpen();
      throwIfAborted(options.signal);
      const sentAt = Date.now();
      const lives = this.#cache.lives;
      const deleted = this.#fields ? await this.#deleteFields(this.#fields, options.signal) : await this.#backend.delete(this.#key, { signal: options.signal });
      if (deleted) await this.#ingestRead(undefined, 'local', sentAt, lives);
    });
  }

  /** Layout 'fields': deletes the head and every field it names in one transaction. */
  async #deleteFields(fields: FieldsLayout<T>, signal: AbortSignal | undefined): Promise<boolean> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const head = await this.#backend.get(this.#key, { signal, consistent: true });
      if (!head) return false;
      let ops: TxnOp[];
      try {
        ops = fields.deleteOps(fields.head(head.value));
      } catch {
        ops = [{ op: 'delete', key: this.#key }]; // a corrupt head: its fields cannot be known
      }
      const r = await this.#backend.txn({ compare: [{ key: this.#key, version: head.version, createRevision: head.createRevision }], ops }, { signal });
      if (r.ok) return true;
    }
    throw new SharedStructError('CONFLICT', `struct '${this.name}' kept changing while it was being deleted; try again`);
  }

  /**
   * @internal One compare-and-swap of the payload together with other keys, in one transaction
   * (etcd Txn, ZooKeeper multi): `build(makeDraft)` returns the next value and the extra compares
   * and ops; the payload's version (and life) is compared, and it is written only if `next`
   * differs. With `base`, nothing is sent unless the cache is still at that version (the value
   * was computed from it). The committed write is this instance's own (`local`) event. Resolves
   * `{ ok: false }` on a lost compare (the caller re-reads and decides), undefined when `build`
   * returns undefined (nothing to send); durable servers commit their messages this way.
   */
  transact(
    build: (makeDraft: () => T) => { readonly next: T; readonly compare: readonly TxnCompare[]; readonly ops: readonly TxnOp[]; readonly list?: Txn['list'] } | undefined,
    options: { readonly signal?: AbortSignal | undefined; readonly base?: number | undefined } = {},
  ): Promise<
    | { readonly ok: true; readonly value: DeepReadonly<T>; readonly version: number; readonly entries: readonly (Entry | undefined)[]; readonly listed?: Listed | undefined }
    | { readonly ok: false }
    | undefined
  > {
    return holding(async () => {
      const cache = this.#readable();
      if (options.base !== undefined && options.base !== cache.version) return { ok: false } as const;
      let draft: T | undefined;
      const built = build(() => (draft = this.#values.draft(cache)));
      if (!built) return undefined;
      const { next, compare, ops, list } = built;
      const base = this.#cache.writeBase(cache);
      const prepared = this.#values.prepare(cache, draft, next, base + 1);
      const payload: TxnCompare = { key: this.#key, version: base, createRevision: cache.createRevision };
      if (!prepared) {
        const r = await this.#backend.txn({ compare: [payload, ...compare], ops, list }, { signal: options.signal });
        return r.ok ? ({ ok: true, value: cache.value as DeepReadonly<T>, version: cache.version, entries: r.entries, listed: r.listed } as const) : ({ ok: false } as const);
      }
      return this.#writes.writing(base + 1, async () => {
        const sentAt = Date.now();
        const own = this.#writeOps(prepared);
        const r = await this.#backend.txn({ compare: [payload, ...compare], ops: [...own, ...ops], list }, { signal: options.signal });
        if (!r.ok) return { ok: false } as const;
        const written = this.#committed(r.entries[0]!, prepared, sentAt);
        return { ok: true, value: written.value, version: written.version, entries: r.entries.slice(own.length), listed: r.listed } as const;
      });
    });
  }

  // ---- events --------------------------------------------------------------------------------

  /**
   * Every committed change from now on, as an async iterator with its own buffer. A subscriber
   * that leaves more than `maxBufferedEvents` unread gets them replaced by one `resync` event.
   * While its `next()` waits, the process stays alive.
   */
  changes(options: ChangesOptions = {}): AsyncIterable<ChangeEvent<T>> {
    const max = options.maxBuffered ?? this.#options.maxBufferedEvents;
    const cache = this.#cache.current;
    const base = { version: cache?.version ?? 0, value: this.#cache.baseValue as T };
    let initial: ChangeEvent<T> | undefined;
    if (options.includeInitial && cache) {
      initial = changeEvent(
        { version: cache.version, previousVersion: 0, revision: cache.revision.toString(), origin: 'resync', coalesced: false, value: cache.value as DeepReadonly<T> },
        undefined,
      );
    }
    if (this.#closed) {
      return this.#fanout.subscribe(base, max, AbortSignal.abort(new SharedStructError('CLOSED', `struct '${this.name}' is closed`)));
    }
    return this.#fanout.subscribe(base, max, options.signal, initial);
  }

  /** The instances that have this struct open (their listener registrations). */
  listeners(options: { signal?: AbortSignal } = {}): Promise<Member[]> {
    return holding(() => this.#ctx.members(this.#listenersPrefix, options.signal));
  }

  // ---- lifecycle -----------------------------------------------------------------------------

  /** Stops the watch and the refresh, removes the listener registration, ends every iterator. Idempotent. */
  close(): Promise<void> {
    return holding(async () => {
      if (this.#closed) return;
      this.#closed = true;
      this.#cache.close();
      this.#closer.abort(new SharedStructError('CLOSED', `struct '${this.name}' is closed`));
      const stopped = this.#pump.stop(new SharedStructError('CLOSED', `struct '${this.name}' is closed`));
      this.#fanout.endAll();
      this.#ctx.onClose(this);
      try {
        await this.#unregister?.();
      } catch (err) {
        this.#ctx.logger.debug('listener registration not removed on close', { struct: this.name, err });
      }
      await stopped;
      this.removeAllListeners();
    });
  }

  /** Same as {@link close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** @internal The session was replaced: the client re-created the registration; re-read and resync. */
  onNewSession(): void {
    if (this.#closed) return;
    void this.#refresh(true);
  }

  // ---- internals -----------------------------------------------------------------------------

  #state(): StructStat['state'] {
    if (this.#closed) return 'closed';
    return this.#cache.current ? 'open' : 'deleted';
  }

  #ensureOpen(): void {
    if (this.#closed) throw new SharedStructError('CLOSED', `struct '${this.name}' is closed`);
  }

  #readable(): Cached<T> {
    this.#ensureOpen();
    const cache = this.#cache.current;
    if (!cache) throw new SharedStructError('NOT_FOUND', `struct '${this.name}' was deleted; open it again with 'initial' to re-create it`);
    return cache;
  }

  /**
   * What a request read from the store, into the cache through the local-writes tracker: an
   * entry, or nothing (the struct is gone, unless a new life was seen since `livesAtSend`).
   * Resolves once applied (it may wait for local writes in flight).
   */
  #ingestRead(entry: Entry | undefined, origin: ChangeOrigin, sentAt: number, livesAtSend: number): Promise<void> | undefined {
    if (entry) return this.#writes.submit(entry.version, () => this.#cache.put(entry, origin, sentAt));
    return this.#writes.submit(undefined, () => this.#cache.delete({ livesAtSend }, sentAt));
  }

  #onWatchEvent(event: WatchEvent): void {
    if (this.#fields) {
      const fields = this.#fields;
      this.#watchChain = this.#watchChain.then(() => this.#onFieldsWatchEvent(fields, event));
      return;
    }
    // Watch events keep the cache current but confirm nothing: they may be old news.
    this.#onValueWatchEvent(event);
  }

  /**
   * Layout 'fields': a head from the watch is put together from the cache and the fields it
   * says changed since (an echo or an old head reads nothing); when a field was already replaced
   * by a newer write, a consistent read brings the newest version instead. Never throws: a
   * failed read leaves the cache to the next event or the periodic check.
   */
  async #onFieldsWatchEvent(fields: FieldsLayout<T>, event: WatchEvent): Promise<void> {
    const head = event.type === 'put' ? event.entry : event.type === 'reset' ? event.entries.find((e) => e.key === this.#key) : undefined;
    if (!head || event.type === 'progress') {
      this.#onValueWatchEvent(event);
      return;
    }
    this.#advance(head.revision);
    const origin = event.type === 'reset' ? 'resync' : 'remote';
    // Our own write in flight may be this very head: let it land first, so its echo reads nothing.
    await this.#writes.submit(head.version, () => {});
    const cache = this.#cache.current;
    const echo = cache && cache.createRevision === head.createRevision && head.version <= cache.version;
    try {
      if (!echo && (await fields.assemble(this.#backend, head, cache, this.#closer.signal)) === 'moved') {
        const sentAt = Date.now();
        const lives = this.#cache.lives;
        await this.#ingestRead(await this.#readStruct(this.#closer.signal), origin, sentAt, lives);
        return;
      }
    } catch (err) {
      if (!this.#closed) this.#ctx.logger.debug('reading the fields of a watched head failed; the periodic check catches up', { struct: this.name, err });
      return;
    }
    await this.#writes.submit(head.version, () => this.#cache.put(head, origin, undefined));
  }

  /** A watch event of the value layout (and the head-less events of the fields layout). */
  #onValueWatchEvent(event: WatchEvent): void {
    switch (event.type) {
      case 'put': {
        const { entry } = event;
        this.#advance(entry.revision);
        void this.#writes.submit(entry.version, () => this.#cache.put(entry, 'remote', undefined));
        return;
      }
      case 'delete':
        this.#advance(event.revision);
        void this.#writes.submit(undefined, () => this.#cache.delete({ revision: event.revision }, undefined));
        return;
      case 'reset': {
        this.#advance(event.revision);
        const entry = event.entries.find((e) => e.key === this.#key);
        if (entry) void this.#writes.submit(entry.version, () => this.#cache.put(entry, 'resync', undefined));
        else void this.#writes.submit(undefined, () => this.#cache.delete({ revision: event.revision }, undefined));
        return;
      }
      case 'progress':
        this.#advance(event.revision);
        this.#cache.seen(event.revision);
        return;
    }
  }

  #advance(revision: bigint): void {
    if (revision > this.#watchRevision) this.#watchRevision = revision;
  }

  /**
   * The CAS loop of `update`, `set` and `modify` (`operation`), in a span and timed; `compute`
   * asks for a draft only if it needs one.
   */
  #writeLoop<R>(operation: string, compute: (makeDraft: () => T) => Promise<{ next: T; result: R }>, options: UpdateOptions): Promise<{ written: WriteResult<T>; result: R }> {
    const telemetry = this.#ctx.telemetry;
    return telemetry.span(operation, { 'sharedstruct.struct': this.name }, async (span) => {
      const startedAt = performance.now();
      const tally = { attempts: 0, conflicts: 0, noop: false };
      const record = (outcome: string): void => {
        telemetry.updated(this.name, operation, performance.now() - startedAt, tally.attempts, tally.conflicts, outcome);
        span.setAttribute('sharedstruct.attempts', tally.attempts);
      };
      try {
        const r = await this.#casLoop(compute, options, tally);
        record(tally.noop ? 'noop' : 'ok');
        return r;
      } catch (err) {
        record(outcomeOf(err));
        throw err;
      }
    });
  }

  async #casLoop<R>(
    compute: (makeDraft: () => T) => Promise<{ next: T; result: R }>,
    options: UpdateOptions,
    tally: { attempts: number; conflicts: number; noop: boolean },
  ): Promise<{ written: WriteResult<T>; result: R }> {
    const maxRetries = options.maxRetries ?? 10;
    if (!Number.isInteger(maxRetries) || maxRetries < 0) {
      throw new SharedStructError('INVALID_ARGUMENT', `option 'maxRetries' must be an integer >= 0, got ${String(maxRetries)}`);
    }
    for (let attempt = 0; ; attempt++) {
      tally.attempts = attempt + 1;
      throwIfAborted(options.signal);
      const cache = this.#readable();
      let draft: T | undefined;
      const out = await compute(() => (draft = this.#values.draft(cache)));
      const next = out.next;
      // The draft is revoked once finished: a result built from it must not hold parts of it.
      const result = draft === undefined ? out.result : undraft(out.result);
      throwIfAborted(options.signal);
      const base = this.#cache.writeBase(cache);
      const prepared = this.#values.prepare(cache, draft, next, base + 1);
      if (!prepared) {
        tally.noop = true;
        return { written: { value: cache.value as DeepReadonly<T>, version: cache.version }, result };
      }
      const r = await this.#put(base, prepared, options.signal);
      if (!('conflict' in r)) return { written: r, result };
      tally.conflicts += 1;
      if (attempt >= maxRetries) {
        await this.#settle(r.conflict);
        throw new SharedStructError(
          'CONFLICT',
          `struct '${this.name}': still conflicting after ${maxRetries} retries; other writers keep changing it, so retry later or raise 'maxRetries'`,
        );
      }
      await Promise.all([sleep(this.#backoff.delayMs(attempt + 1), options.signal), this.#settle(r.conflict)]);
    }
  }

  /**
   * One CAS. Resolves the write, or `{ conflict }` with the store's entry, which the caller
   * applies with {@link #settle} (after its backoff, when it retries).
   */
  async #put(expectedVersion: number, prepared: Prepared<T>, signal: AbortSignal | undefined): Promise<WriteResult<T> | { conflict: Conflict }> {
    const r = await this.#writes.writing(expectedVersion + 1, async (): Promise<{ written: WriteResult<T> } | { conflict: Conflict }> => {
      const sentAt = Date.now();
      const lives = this.#cache.lives;
      if (prepared.ops) {
        const compare = [{ key: this.#key, version: expectedVersion, createRevision: prepared.life?.createRevision }];
        const res = await this.#backend.txn({ compare, ops: prepared.ops }, { signal });
        if (res.ok) return { written: this.#committed(res.entries[0]!, prepared, sentAt) };
        return { conflict: { entry: await this.#readStruct(signal), sentAt, lives } };
      }
      const res = await this.#backend.put(this.#key, prepared.bytes, { expectedVersion, signal, life: prepared.life });
      return res.ok ? { written: this.#committed(res.entry, prepared, sentAt) } : { conflict: { entry: res.current, sentAt, lives } };
    });
    return 'written' in r ? r.written : r;
  }

  /** Applies our committed write (inside its `writing`, so it is the one `local` event) and returns its result. */
  #committed(entry: Entry, prepared: Prepared<T>, sentAt: number): WriteResult<T> {
    this.#fields?.remember(entry, prepared.value);
    this.#cache.put(entry, 'local', sentAt, prepared);
    const cache = this.#cache.current;
    return { value: (cache && cache.version === entry.version ? cache.value : prepared.value) as DeepReadonly<T>, version: entry.version };
  }

  /**
   * Applies the entry a lost CAS returned. Done as late as possible — after the watch events
   * held during the write and, on a store whose watch reports every version (etcd), after the
   * watch had up to 100 ms to bring the winners' versions — so subscribers see each version one
   * by one; the entry only fills what the watch has not brought.
   */
  async #settle({ entry, sentAt, lives }: Conflict): Promise<void> {
    // Dated and counted as of when the lost write was sent: a new life seen since then (by the
    // watch or a consistent read) is newer than the "gone" that write found.
    if (!entry) {
      await this.#ingestRead(undefined, 'remote', sentAt, lives);
      throw new SharedStructError('NOT_FOUND', `struct '${this.name}' was deleted; open it again with 'initial' to re-create it`);
    }
    const cache = this.#cache.current;
    if (cache && entry.version > cache.version && this.#backend.features.has('everyVersion')) {
      await this.#caughtUp(entry, 100);
    }
    await this.#ingestRead(entry, 'remote', sentAt, lives);
  }

  /** Resolves once the watch brought the cache to `entry`'s version, or after `ms`. */
  #caughtUp(entry: Entry, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.off('change', onChange);
        this.off('deleted', done);
        resolve();
      };
      const onChange = (ev: ChangeEvent<T>): void => {
        if (ev.version >= entry.version) done();
      };
      const timer = setTimeout(done, ms);
      timer.unref();
      this.on('change', onChange);
      this.on('deleted', done);
    });
  }

  /**
   * Confirms the cache: a version-only check, and a read only when the store moved on. With
   * `resync` (a new session) the read is unconditional and a change arrives as `resync`.
   */
  #refresh(resync: boolean): Promise<void> {
    if (this.#refreshing) return this.#refreshing;
    const run = async (): Promise<void> => {
      const signal = this.#closer.signal;
      try {
        const cache = this.#cache.current;
        if (!resync && cache) {
          const sentAt = Date.now();
          const stat = await this.#backend.stat(this.#key, { signal });
          if (stat && stat.version === cache.version && stat.createRevision === cache.createRevision) {
            this.#cache.confirm(sentAt);
            return;
          }
        }
        const sentAt = Date.now();
        const lives = this.#cache.lives;
        const entry = await this.#readStruct(signal);
        await this.#ingestRead(entry, resync ? 'resync' : 'remote', sentAt, lives);
      } catch (err) {
        if (this.#closed) return;
        const e = err instanceof SharedStructError ? err : new SharedStructError('CONNECTION', 'refresh failed', { cause: err });
        this.emit('error', new SharedStructError(e.code, `the background check of '${this.name}' failed (${e.message}); read() throws STALE_READ once maxStalenessMs passes without an answer`, { cause: e }));
      }
    };
    this.#refreshing = run().finally(() => (this.#refreshing = undefined));
    return this.#refreshing;
  }
}
