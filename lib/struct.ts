/** `SharedStruct<T>`: the cached, watched, compare-and-swap JSON struct. */
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import type { Backend, Entry, Logger, WatchEvent } from './backend.js';
import type { ErrorObject } from 'ajv';
import { decodeFramed, encodeFramed } from './codec.js';
import { SharedStructError, abortError, isSharedStructError, throwIfAborted } from './errors.js';
import { acquireLock } from './lock.js';
import { FanOut, changeEvent, type ChangeEvent, type ChangeOrigin } from './fanout.js';
import { assertPlainJson, deepFreeze, jsonEqual } from './json.js';
import type { ResolvedOpenOptions } from './options.js';
import { exponentialBackoff, type BackoffPolicy } from './retry.js';
import { schemaErrorText, validatorFor } from './schema.js';
import { sleep } from './util/abort.js';
import { TypedEmitter } from './util/emitter.js';

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

/** A listener registration under `<struct>/listeners/<id>`. */
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
  readonly value: T;
  readonly version: number;
}

interface Cached<T> {
  readonly value: T;
  /** The stored bytes of `value`: decoding them is the cheapest fresh mutable copy. */
  readonly bytes: Uint8Array;
  readonly version: number;
  readonly revision: bigint;
  readonly createRevision: bigint;
  readonly ephemeral: boolean;
}

/** A local write, checked and encoded, that differs from the cached version `base`. */
interface Prepared<T> {
  readonly bytes: Uint8Array;
  /** The value as it will be cached (frozen). */
  readonly value: T;
  /** The cached version it was made from (-1: none; the commit decodes what was stored). */
  readonly base: number;
  /** The life of the cached version it was made from (a re-created key must not take it). */
  readonly life?: { readonly createRevision: bigint; readonly ephemeral: boolean };
}

/** What the client needs of a struct, whatever its `T`. */
export interface StructHandle {
  close(): Promise<void>;
  onNewSession(): void;
}

/** Internal wiring a struct receives from its client. */
export interface StructContext {
  readonly backend: Backend;
  readonly logger: Logger;
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
  /** This instance's listener id. */
  readonly id: string = randomUUID();
  readonly #ctx: StructContext;
  readonly #backend: Backend;
  readonly #options: ResolvedOpenOptions<T>;
  readonly #key: string;
  readonly #listenersPrefix: string;
  readonly #writeLockPrefix: string;
  readonly #backoff: BackoffPolicy;
  readonly #validate: ((value: unknown) => readonly ErrorObject[] | undefined) | undefined;
  readonly #fanout = new FanOut<T>();
  readonly #closer = new AbortController();
  /**
   * Versions that local writes in flight would create (version → writes). A watch event that
   * could carry one of them (or, under coalescing, pass it) waits in `#held` until those writes
   * resolve: the write's own result must apply its version, because its watch echo cannot be
   * told apart from a competing writer that committed the same bytes, and a coalesced event
   * could otherwise swallow the one `local` event the write owes.
   */
  readonly #pending = new Map<number, number>();
  readonly #held: WatchEvent[] = [];
  #cache: Cached<T> | undefined;
  /** The last value before a delete: the base of the next life's first event. */
  #lastValue: T | undefined;
  #confirmedAt = 0;
  /** When the information being applied was current: the send time of the request that brought it (see `#confirm`). */
  #asOf: number | undefined;
  #state: 'open' | 'deleted' | 'closed' = 'open';
  #watchRevision = 0n;
  /**
   * The newest corrupt version seen in the cache's life (reported once). Writes compare against
   * it so that writing heals the struct; the next good remote value is delivered as a `resync`.
   */
  #corrupt: { readonly version: number; readonly createRevision: bigint } | undefined;
  #refreshing: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #unregister: (() => Promise<void>) | undefined;
  #watchLoop: Promise<void> | undefined;

  /** @internal Use `client.open()`. */
  constructor(ctx: StructContext, name: string, key: string, options: ResolvedOpenOptions<T>) {
    super((err) => ctx.logger.error(`unhandled error in struct '${name}'`, { err }));
    this.#ctx = ctx;
    this.#backend = ctx.backend;
    this.name = name;
    this.#key = `${key}/payload`;
    this.#listenersPrefix = `${key}/listeners`;
    this.#writeLockPrefix = `${key}/write_lock`;
    this.#options = options;
    this.#backoff = options.backoff ?? exponentialBackoff();
    this.#validate = options.schema ? validatorFor(options.schema) : undefined;
  }

  /** @internal Loads or creates the struct, registers the listener and starts the watch. */
  async start(signal?: AbortSignal): Promise<void> {
    const sentAt = Date.now();
    let entry = await this.#backend.get(this.#key, { signal, consistent: true });
    if (!entry) {
      if (!this.#options.hasInitial) {
        throw new SharedStructError('NOT_FOUND', `struct '${this.name}' does not exist and no 'initial' was given`);
      }
      const bytes = this.#encodeLocal(this.#options.initial);
      const created = await this.#backend.create(this.#key, bytes, { signal });
      entry = created.created ? created.entry : created.current;
    }
    const decoded = this.#decodeRemote(entry);
    if ('error' in decoded) throw decoded.error;
    const first = entry;
    this.#asOfRequest(sentAt, () => this.#setCache(first, decoded.value));
    this.#watchRevision = entry.revision;
    this.#unregister = await this.#ctx.register(
      `${this.#listenersPrefix}/${this.id}`,
      { id: this.id, host: hostname(), pid: process.pid, since: Date.now() },
      signal,
    );
    this.#watchLoop = this.#runWatch();
    this.#timer = setInterval(() => void this.#refresh(false), this.#options.refreshIntervalMs);
    this.#timer.unref();
  }

  // ---- reads ---------------------------------------------------------------------------------

  /**
   * The cached value, deep-frozen, with no I/O and no copy. Throws `STALE_READ` when the cache
   * was not confirmed equal to the store within `maxStalenessMs`, and `NOT_FOUND` after a delete.
   */
  read(): T {
    const cache = this.#readable();
    const staleness = Date.now() - this.#confirmedAt;
    if (staleness > this.#options.maxStalenessMs) {
      throw new SharedStructError(
        'STALE_READ',
        `struct '${this.name}' was last confirmed ${staleness} ms ago (maxStalenessMs ${this.#options.maxStalenessMs})`,
      );
    }
    return cache.value;
  }

  /** The cached value, whatever its age. Throws only `NOT_FOUND` (deleted) or `CLOSED`. */
  readDirty(): T {
    return this.#readable().value;
  }

  /**
   * A linearizable read from the store. When the store is newer than the cache, the cache is
   * updated and the change events are delivered before this resolves; when nothing changed, the
   * value is neither decoded nor diffed.
   */
  async readConsistent(options: { signal?: AbortSignal } = {}): Promise<T> {
    this.#ensureOpen();
    throwIfAborted(options.signal);
    const sentAt = Date.now();
    const entry = await this.#backend.get(this.#key, { signal: options.signal, consistent: true });
    this.#asOfRequest(sentAt, () => this.#apply(entry, 'remote'));
    return this.#readable().value;
  }

  /** Version, revision and freshness of the cache. */
  stat(): StructStat {
    return Object.freeze({
      version: this.#cache?.version ?? 0,
      revision: (this.#cache?.revision ?? 0n).toString(),
      confirmedAt: this.#confirmedAt,
      stalenessMs: Date.now() - this.#confirmedAt,
      state: this.#state,
    });
  }

  // ---- writes --------------------------------------------------------------------------------

  /**
   * Changes the struct with compare-and-swap. `fn` gets a mutable deep copy: mutate it, or return
   * the next value (anything but `undefined` replaces the draft, `null` included). On a conflict
   * the cache is refreshed and `fn` runs again, after a jittered backoff, up to `maxRetries`
   * times; then `CONFLICT`. A result equal to the current value writes nothing.
   */
  async update(fn: (draft: T) => T | void | Promise<T | void>, options: UpdateOptions = {}): Promise<WriteResult<T>> {
    const r = await this.#writeLoop(async (makeDraft) => {
      const draft = makeDraft();
      const out = await fn(draft);
      return { next: out === undefined ? draft : out, result: undefined };
    }, options);
    return r.written;
  }

  /** Replaces the value (the `update` loop with a fixed value). */
  async set(value: T, options: UpdateOptions = {}): Promise<WriteResult<T>> {
    if (value === undefined) throw new SharedStructError('INVALID_VALUE', 'set() needs a value; undefined is not JSON');
    const r = await this.#writeLoop(() => Promise.resolve({ next: value, result: undefined }), options);
    return r.written;
  }

  /**
   * `fn(draft)` returns `[result, next]` (it may be async); `next` is written with the same
   * compare-and-swap loop as `update`, and `result` is what this resolves.
   */
  async modify<R>(fn: (draft: T) => readonly [R, T] | Promise<readonly [R, T]>, options: UpdateOptions = {}): Promise<R> {
    const r = await this.#writeLoop(async (makeDraft) => {
      const out = await fn(makeDraft());
      if (!Array.isArray(out) || out.length !== 2) {
        throw new SharedStructError('INVALID_ARGUMENT', 'modify(fn): fn must return [result, next]');
      }
      return { next: out[1], result: out[0] };
    }, options);
    return r.result;
  }

  /**
   * One compare-and-swap attempt: writes `value` only if the store still holds
   * `expectedVersion`; otherwise rejects `CONFLICT` and leaves cache and events untouched.
   */
  async compareAndSet(expectedVersion: number, value: T, options: { signal?: AbortSignal } = {}): Promise<WriteResult<T>> {
    this.#ensureOpen();
    throwIfAborted(options.signal);
    if (!Number.isInteger(expectedVersion) || expectedVersion < 1) {
      throw new SharedStructError('INVALID_ARGUMENT', `expectedVersion must be an integer >= 1, got ${String(expectedVersion)}`);
    }
    const bytes = this.#encodeLocal(value);
    // No diff against the cache (base -1): the commit decodes and diffs the stored entry, so the
    // value is decoded here only if the cache has already moved past this write.
    const codec = this.#options.codec;
    let decoded: T | undefined;
    const prepared: Prepared<T> = {
      bytes,
      base: -1,
      get value(): T {
        return (decoded ??= deepFreeze(decodeFramed(codec, bytes) as T));
      },
    };
    const r = await this.#put(expectedVersion, prepared, options.signal);
    if ('conflict' in r) {
      await this.#settle(r.conflict);
      throw new SharedStructError('CONFLICT', `struct '${this.name}' is no longer at version ${expectedVersion}`);
    }
    return r;
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
  async updateLocked(
    fn: (draft: T, lock: { readonly token: string; readonly signal: AbortSignal; readonly held: boolean }) => T | void | Promise<T | void>,
    options: { lockTimeoutMs?: number; signal?: AbortSignal } = {},
  ): Promise<WriteResult<T>> {
    this.#ensureOpen();
    throwIfAborted(options.signal);
    const lock = await acquireLock(this.#backend, `write lock of '${this.name}'`, this.#writeLockPrefix, {
      ...(options.lockTimeoutMs !== undefined && { waitMs: options.lockTimeoutMs }),
      ...(options.signal && { signal: options.signal }),
    });
    try {
      await this.readConsistent(options.signal ? { signal: options.signal } : {});
      const cache = this.#readable();
      const draft = this.#draft(cache);
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
      const prepared = this.#prepare(cache, draft, next);
      if (!prepared) return { value: cache.value, version: cache.version };
      const expectedVersion = this.#writeBase(cache);
      return await this.#writing(expectedVersion + 1, async () => {
        const sentAt = Date.now();
        const r = await this.#backend.txn(
          {
            compare: [{ key: lock.key, exists: true }],
            ops: [{ op: 'put', key: this.#key, value: prepared.bytes, expectedVersion }],
          },
          { signal: options.signal },
        );
        if (r.ok) return this.#committed(r.entries[0]!, prepared, sentAt);
        const lockKept = !lock.signal.aborted && (await this.#backend.stat(lock.key)) !== undefined;
        if (!lockKept) throw new SharedStructError('LOCK_LOST', `write lock of '${this.name}' was lost before the commit; nothing was written`);
        await this.readConsistent();
        throw new SharedStructError('CONFLICT', `struct '${this.name}' was changed by a writer that does not take the write lock`);
      });
    } finally {
      await lock.release();
    }
  }

  /** Deletes the struct from the store. Other instances get a `deleted` event. */
  async delete(options: { signal?: AbortSignal } = {}): Promise<void> {
    this.#ensureOpen();
    throwIfAborted(options.signal);
    const deleted = await this.#backend.delete(this.#key, { signal: options.signal });
    if (deleted) this.#apply(undefined, 'local');
  }

  // ---- events --------------------------------------------------------------------------------

  /**
   * Every committed change from now on, as an async iterator with its own buffer. A subscriber
   * that leaves more than `maxBufferedEvents` unread gets them replaced by one `resync` event.
   */
  changes(options: ChangesOptions = {}): AsyncIterable<ChangeEvent<T>> {
    const max = options.maxBuffered ?? this.#options.maxBufferedEvents;
    const cache = this.#cache;
    const base = { version: cache?.version ?? 0, value: (cache?.value ?? this.#lastValue) as T };
    let initial: ChangeEvent<T> | undefined;
    if (options.includeInitial && cache) {
      initial = changeEvent({ version: cache.version, previousVersion: 0, revision: cache.revision.toString(), origin: 'resync', coalesced: false, value: cache.value }, undefined);
    }
    if (this.#state === 'closed') {
      return this.#fanout.subscribe(base, max, AbortSignal.abort(new SharedStructError('CLOSED', 'the struct is closed')));
    }
    return this.#fanout.subscribe(base, max, options.signal, initial);
  }

  /** The instances that have this struct open (their listener registrations). */
  listeners(options: { signal?: AbortSignal } = {}): Promise<Member[]> {
    return this.#ctx.members(this.#listenersPrefix, options.signal);
  }

  // ---- lifecycle -----------------------------------------------------------------------------

  /** Stops the watch and the refresh, removes the listener registration, ends every iterator. Idempotent. */
  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    clearInterval(this.#timer);
    this.#closer.abort(new SharedStructError('CLOSED', 'the struct is closed'));
    this.#fanout.endAll();
    this.#ctx.onClose(this);
    try {
      await this.#unregister?.();
    } catch (err) {
      this.#ctx.logger.debug('listener registration not removed on close', { struct: this.name, err });
    }
    await this.#watchLoop;
    this.removeAllListeners();
  }

  /** Same as {@link close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** @internal The session was replaced: the client re-created the registration; re-read and resync. */
  onNewSession(): void {
    if (this.#state === 'closed') return;
    void this.#refresh(true);
  }

  // ---- internals -----------------------------------------------------------------------------

  #ensureOpen(): void {
    if (this.#state === 'closed') throw new SharedStructError('CLOSED', `struct '${this.name}' is closed`);
  }

  #readable(): Cached<T> {
    this.#ensureOpen();
    if (!this.#cache) throw new SharedStructError('NOT_FOUND', `struct '${this.name}' was deleted`);
    return this.#cache;
  }

  /** Checks and encodes a value this process wants to write. */
  #encodeLocal(value: unknown): Uint8Array {
    assertPlainJson(value);
    if (this.#validate) {
      const errors = this.#validate(value);
      if (errors) {
        throw new SharedStructError('SCHEMA_VALIDATION', `value for '${this.name}' fails its schema: ${schemaErrorText(errors)}`, {
          details: errors,
        });
      }
    }
    const bytes = encodeFramed(this.#options.codec, value);
    const max = this.#backend.limits.maxValueBytes;
    if (bytes.byteLength > max) {
      throw new SharedStructError('VALUE_TOO_LARGE', `value for '${this.name}' is ${bytes.byteLength} bytes encoded; the ${this.#backend.kind} limit is ${max}`);
    }
    return bytes;
  }

  /** Decodes and checks a stored value: the frozen value, or the `CORRUPT_REMOTE_VALUE` error. */
  #decodeRemote(entry: Entry): { value: T } | { error: SharedStructError } {
    const corrupt = (why: string, cause: unknown): { error: SharedStructError } => ({
      error: new SharedStructError('CORRUPT_REMOTE_VALUE', `struct '${this.name}' version ${entry.version} ${why}`, { cause }),
    });
    let value: unknown;
    try {
      value = decodeFramed(this.#options.codec, entry.value);
    } catch (err) {
      if (isSharedStructError(err, 'CORRUPT_REMOTE_VALUE')) return corrupt(err.message, err);
      return corrupt(`cannot be decoded with codec '${this.#options.codec.name}'`, err);
    }
    const errors = this.#validate?.(value);
    if (errors) return corrupt(`fails its schema: ${schemaErrorText(errors)}`, errors);
    return { value: deepFreeze(value as T) };
  }

  #setCache(entry: Entry, value: T): void {
    this.#cache = { value, bytes: entry.value, version: entry.version, revision: entry.revision, createRevision: entry.createRevision, ephemeral: entry.ephemeral };
    this.#lastValue = value;
    this.#confirm();
  }

  /**
   * Marks the cache confirmed equal to the store as of `#asOf`: when the request that brought the
   * news was sent, not when the answer arrived. An answer or an event tells how the store was when
   * it left; one that arrives late (a slow link, a process frozen with messages waiting in its
   * socket, a member replaying history after a restart) must not make the cache look fresh. Watch
   * events apply with no `#asOf`: they keep the cache current but confirm nothing.
   */
  #confirm(): void {
    const at = this.#asOf;
    if (at !== undefined && at > this.#confirmedAt) this.#confirmedAt = at;
  }

  /** Runs `apply` (synchronous) with its confirmations dated `sentAt`. */
  #asOfRequest(sentAt: number, apply: () => void): void {
    const outer = this.#asOf;
    this.#asOf = sentAt;
    try {
      apply();
    } finally {
      this.#asOf = outer;
    }
  }

  /**
   * The one place the cache changes. `entry` is what the store holds (undefined: deleted).
   * Versions at or below the cache's are echoes and only confirm; newer ones are decoded and
   * diffed once, cached, then published. `origin` 'resync' marks a change found after lost
   * continuity. `mine` is this instance's own write: when it lands right on the cached version
   * it was diffed against, its checked value and diff are used as they are.
   */
  #apply(entry: Entry | undefined, origin: ChangeOrigin, mine?: Prepared<T>): void {
    if (this.#state === 'closed') return;
    const cache = this.#cache;
    if (!entry) {
      this.#confirm();
      if (!cache) return;
      this.#cache = undefined;
      this.#state = 'deleted';
      this.emit('deleted', { revision: (this.#watchRevision > cache.revision ? this.#watchRevision : cache.revision).toString() });
      return;
    }
    let newLife = false;
    if (cache && entry.createRevision !== cache.createRevision) {
      if (entry.createRevision < cache.createRevision) return; // an older life, already superseded
      // Deleted and created again while we were not looking.
      this.#apply(undefined, origin);
      newLife = true;
    }
    const current = this.#cache;
    const corrupt = current && this.#corrupt?.createRevision === current.createRevision ? this.#corrupt : undefined;
    if (current && entry.version <= Math.max(current.version, corrupt?.version ?? 0)) {
      this.#confirm();
      return;
    }
    if (mine && current && !newLife && !corrupt && current.version === mine.base && entry.version === mine.base + 1) {
      this.#publish(entry, current, origin, mine.value, current.value, mine.bytes);
      return;
    }
    const decoded = this.#decodeRemote(entry);
    if ('error' in decoded) {
      // Keep the last valid version; the next valid one arrives as a resync.
      this.#corrupt = { version: entry.version, createRevision: entry.createRevision };
      const kept = new SharedStructError('CORRUPT_REMOTE_VALUE', `${decoded.error.message}; keeping version ${current?.version ?? 0}`, {
        cause: decoded.error.cause,
      });
      this.emit('error', kept);
      return;
    }
    let eventOrigin: ChangeOrigin = origin;
    if (!current || newLife || (corrupt && origin !== 'local')) eventOrigin = 'resync';
    const before = current ? current.value : this.#lastValue;
    this.#publish(entry, current, eventOrigin, decoded.value, before, entry.value);
  }

  /**
   * Caches `value` at `entry` and hands its event to every subscriber. The event's `changes`
   * (from `before`) are diffed only if someone reads them; `bytes` (the encoded `value`) tell the
   * diff whether it must look for empty keys.
   */
  #publish(entry: Entry, current: Cached<T> | undefined, origin: ChangeOrigin, value: T, before: unknown, bytes: Uint8Array): void {
    const previousVersion = current ? current.version : 0;
    this.#corrupt = undefined;
    const fields = {
      version: entry.version,
      previousVersion,
      revision: entry.revision.toString(),
      origin,
      coalesced: current ? entry.version !== current.version + 1 : previousVersion !== 0,
      value,
    };
    const event = changeEvent<T>(fields, before, bytes);
    this.#setCache(entry, value);
    if (this.#state === 'deleted') this.#state = 'open';
    this.#fanout.publish(event);
    this.emit('change', event);
  }

  /** The CAS loop of `update`, `set` and `modify`; `compute` asks for a draft only if it needs one. */
  async #writeLoop<R>(
    compute: (makeDraft: () => T) => Promise<{ next: T; result: R }>,
    options: UpdateOptions,
  ): Promise<{ written: WriteResult<T>; result: R }> {
    const maxRetries = options.maxRetries ?? 10;
    if (!Number.isInteger(maxRetries) || maxRetries < 0) {
      throw new SharedStructError('INVALID_ARGUMENT', `option 'maxRetries' must be an integer >= 0, got ${String(maxRetries)}`);
    }
    for (let attempt = 0; ; attempt++) {
      throwIfAborted(options.signal);
      const cache = this.#readable();
      let draft: T | undefined;
      const { next, result } = await compute(() => (draft = this.#draft(cache)));
      throwIfAborted(options.signal);
      const prepared = this.#prepare(cache, draft, next);
      if (!prepared) return { written: { value: cache.value, version: cache.version }, result };
      const base = this.#writeBase(cache);
      const r = await this.#put(base, prepared, options.signal);
      if (!('conflict' in r)) return { written: r, result };
      if (attempt >= maxRetries) {
        await this.#settle(r.conflict);
        throw new SharedStructError('CONFLICT', `struct '${this.name}': still conflicting after ${maxRetries} retries`);
      }
      await Promise.all([sleep(this.#backoff.delayMs(attempt + 1), options.signal), this.#settle(r.conflict)]);
    }
  }

  /** A fresh mutable copy of the cached value: decoding its bytes beats a structured clone. */
  #draft(cache: Cached<T>): T {
    return decodeFramed(this.#options.codec, cache.bytes) as T;
  }

  /**
   * Checks and encodes `next` (plain JSON, schema, size: before any request). Undefined when it
   * equals the cache: the same bytes, or (rarely: other key order) the same JSON. A draft we
   * made is frozen in place; a value the caller built is decoded from the bytes instead, so the
   * caller's object is never frozen.
   */
  #prepare(cache: Cached<T>, draft: T | undefined, next: T): Prepared<T> | undefined {
    const bytes = this.#encodeLocal(next);
    if (sameBytes(bytes, cache.bytes) || jsonEqual(cache.value, next)) return undefined;
    const value = next === draft ? deepFreeze(next) : deepFreeze(decodeFramed(this.#options.codec, bytes) as T);
    return { bytes, value, base: cache.version, life: { createRevision: cache.createRevision, ephemeral: cache.ephemeral } };
  }

  /** The version a write compares against: the cache's, or a newer corrupt one it overwrites. */
  #writeBase(cache: Cached<T>): number {
    const corrupt = this.#corrupt;
    return corrupt && corrupt.createRevision === cache.createRevision ? Math.max(cache.version, corrupt.version) : cache.version;
  }

  /** Whether a watch event must wait for local writes in flight (see `#pending`). */
  #mustHold(event: WatchEvent): boolean {
    if (this.#pending.size === 0) return false;
    if (event.type !== 'put') return true;
    return event.entry.version >= Math.min(...this.#pending.keys());
  }

  /**
   * One CAS. Resolves the write, or `{ conflict }` with the store's entry, which the caller
   * applies with {@link #settle} (after its backoff, when it retries).
   */
  async #put(expectedVersion: number, prepared: Prepared<T>, signal: AbortSignal | undefined): Promise<WriteResult<T> | { conflict: Entry | undefined }> {
    const r = await this.#writing(expectedVersion + 1, async () => {
      const sentAt = Date.now();
      const res = await this.#backend.put(this.#key, prepared.bytes, { expectedVersion, signal, life: prepared.life });
      return res.ok ? { written: this.#committed(res.entry, prepared, sentAt) } : res;
    });
    return 'written' in r ? r.written : { conflict: r.current };
  }

  /**
   * Applies the entry a lost CAS returned. Done as late as possible — after the watch events
   * held during the write and, on a store whose watch reports every version (etcd), after the
   * watch had up to 100 ms to bring the winners' versions — so subscribers see each version one
   * by one; the entry only fills what the watch has not brought.
   */
  async #settle(conflict: Entry | undefined): Promise<void> {
    if (!conflict) {
      this.#apply(undefined, 'remote');
      throw new SharedStructError('NOT_FOUND', `struct '${this.name}' was deleted`);
    }
    const cache = this.#cache;
    if (cache && conflict.version > cache.version && this.#backend.features.has('everyVersion')) {
      await this.#caughtUp(conflict, 100);
    }
    this.#apply(conflict, 'remote');
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

  /** Applies our committed write and returns its result. */
  #committed(entry: Entry, prepared: Prepared<T>, sentAt: number): WriteResult<T> {
    this.#asOfRequest(sentAt, () => this.#apply(entry, 'local', prepared));
    const cache = this.#cache;
    return { value: cache && cache.version === entry.version ? cache.value : prepared.value, version: entry.version };
  }

  /** Runs a write that would create `version`, holding back the watch events it may own (see `#pending`). */
  async #writing<R>(version: number, write: () => Promise<R>): Promise<R> {
    this.#pending.set(version, (this.#pending.get(version) ?? 0) + 1);
    try {
      return await write();
    } finally {
      const left = this.#pending.get(version)! - 1;
      if (left === 0) this.#pending.delete(version);
      else this.#pending.set(version, left);
      while (this.#held.length > 0 && !this.#mustHold(this.#held[0]!)) this.#onWatchEvent(this.#held.shift()!);
    }
  }


  async #runWatch(): Promise<void> {
    const signal = this.#closer.signal;
    for (let failures = 0; !signal.aborted; ) {
      const watch = this.#backend.watch({ key: this.#key }, { afterRevision: this.#watchRevision, signal });
      try {
        for await (const event of watch) {
          failures = 0;
          if (this.#held.length > 0 || this.#mustHold(event)) this.#held.push(event);
          else this.#onWatchEvent(event);
        }
      } catch (err) {
        if (signal.aborted) return;
        failures += 1;
        this.#ctx.logger.warn(`watch of '${this.name}' broke; resuming after revision ${this.#watchRevision}`, { err });
      } finally {
        watch.close();
      }
      if (signal.aborted) return;
      try {
        await sleep(Math.min(1000, 10 * 2 ** failures), signal);
      } catch {
        return;
      }
    }
  }

  #onWatchEvent(event: WatchEvent): void {
    switch (event.type) {
      case 'put':
        this.#apply(event.entry, 'remote');
        this.#advance(event.entry.revision);
        return;
      case 'delete':
        this.#apply(undefined, 'remote');
        this.#advance(event.revision);
        return;
      case 'reset': {
        this.#apply(event.entries.find((e) => e.key === this.#key), 'resync');
        this.#advance(event.revision);
        return;
      }
      case 'progress':
        // Like any event, progress may be old news (a member behind the others): no confirmation.
        this.#advance(event.revision);
        return;
    }
  }

  #advance(revision: bigint): void {
    if (revision > this.#watchRevision) this.#watchRevision = revision;
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
        const cache = this.#cache;
        if (!resync && cache) {
          const sentAt = Date.now();
          const stat = await this.#backend.stat(this.#key, { signal });
          if (stat && stat.version === cache.version && stat.createRevision === cache.createRevision) {
            this.#asOfRequest(sentAt, () => this.#confirm());
            return;
          }
        }
        const sentAt = Date.now();
        const entry = await this.#backend.get(this.#key, { signal, consistent: true });
        this.#asOfRequest(sentAt, () => this.#apply(entry, resync ? 'resync' : 'remote'));
      } catch (err) {
        if (this.#state === 'closed') return;
        const e = isSharedStructError(err) ? err : new SharedStructError('CONNECTION', 'refresh failed', { cause: err });
        this.emit('error', new SharedStructError(e.code, `background refresh of '${this.name}' failed: ${e.message}`, { cause: e }));
      }
    };
    this.#refreshing = run().finally(() => (this.#refreshing = undefined));
    return this.#refreshing;
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.compare(a, b) === 0;
}
