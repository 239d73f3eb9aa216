/** `Client`: one connection (one session) to a store, the factory of structs. */
import type { Backend, Logger, RequestFailures, SessionState, SessionStateChange } from './backend.js';
import { SharedStructError, abortError, isSharedStructError, throwIfAborted } from './errors.js';
import { Telemetry, outcomeOf } from './telemetry.js';
import { jsonCodec } from './codec.js';
import { validateName } from './names.js';
import { resolveOpenOptions, type OpenOptions, type ResolvedConnectOptions } from './options.js';
import type { SchemaName, SchemaTypes } from '../schemas/index.js';
import { SharedStruct, type Member, type StructHandle } from './struct.js';
import { Group, toMember } from './group.js';
import { Inspector } from './inspect.js';
import { Election, type ElectionOptions } from './election.js';
import { DurableServer, type ServerOptions } from './server.js';
import type { Lock} from './lock.js';
import { acquireLock, type LockOptions } from './lock.js';
import { assertPlainJson } from './json.js';
import { randomUUID } from 'node:crypto';
import { anySignal, sleep } from './util/abort.js';
import { holding } from './util/keepalive.js';
import { retry } from './retry.js';
import { AsyncQueue } from './util/async-queue.js';
import { TypedEmitter } from './util/emitter.js';

/** Events of a {@link Client}. */
export interface ClientEvents {
  /** The session changed state. */
  state: SessionStateChange;
  /** A background problem (a registration that could not be re-created). */
  error: SharedStructError;
}

/** Options of {@link Client.expect}: the open options plus how long to wait. */
export interface ExpectOptions<T> extends OpenOptions<T> {
  readonly signal?: AbortSignal;
  /** Reject `TIMEOUT` when the struct has not appeared within this many ms. */
  readonly timeoutMs?: number;
}

interface Registration {
  readonly key: string;
  readonly bytes: Uint8Array;
  /** The session epoch the key was last created in. */
  epoch: number;
}

/** Registered symbol, so two loaded copies of this module still find a client's backend. */
const BACKEND = Symbol.for('sharedstruct.backend');

/**
 * A connection to a store, made by {@link connect}. It holds one session (an etcd lease, a
 * ZooKeeper session), the ephemeral registrations tied to it, and the structs opened through it.
 *
 * @example
 * ```ts
 * await using client = await connect('memory://');
 * client.on('state', (s) => console.log('session', s.state));
 * const flags = await client.open('flags', { initial: { beta: false } });
 * ```
 */
export class Client extends TypedEmitter<ClientEvents> implements AsyncDisposable {
  /** @internal */
  readonly [BACKEND]: Backend;
  /** The namespace every key of this client lives under. */
  readonly namespace: string;
  readonly #options: ResolvedConnectOptions;
  readonly #logger: Logger;
  readonly #structs = new Set<StructHandle>();
  readonly #servers = new Set<{ close(): Promise<void> }>();
  readonly #registrations = new Map<string, Registration>();
  readonly #closer = new AbortController();
  readonly #unsubscribe: () => void;
  readonly #spawn: (sessionTtlMs: number) => Promise<Backend>;
  /** Extra sessions for locks whose `ttlMs` differs from the client's session ttl, by ttl. */
  readonly #sessions = new Map<number, Promise<Backend>>();
  #epoch: number;
  #closed = false;
  #inspector: Inspector | undefined;
  #reregistering: Promise<void> | undefined;
  /** This client's metrics and spans (no-ops without an OpenTelemetry SDK). */
  readonly #telemetry: Telemetry;
  /** The `sharedstruct.client` attribute of this client's metrics and spans: tells its figures from other clients' in the same process. */
  readonly telemetryId: string;

  /** @internal Use {@link connect}. `spawn` opens another session on the same store. */
  constructor(backend: Backend, options: ResolvedConnectOptions, spawn: (sessionTtlMs: number) => Promise<Backend>) {
    super((err) => options.logger.error('unhandled client error', { err }));
    this[BACKEND] = backend;
    this.#spawn = spawn;
    this.#options = options;
    this.#logger = options.logger;
    this.namespace = options.namespace;
    this.#epoch = backend.session.epoch;
    this.#unsubscribe = backend.session.onStateChange((change) => this.#onState(change));
    this.telemetryId = randomUUID().slice(0, 8);
    this.#telemetry = new Telemetry(backend.kind, this.telemetryId, {
      requests: () => backend.counters.snapshot(),
      failures: () => backend.counters.failures(),
      structs: () =>
        [...this.#structs].flatMap((s) => {
          const stat = s.stat();
          return stat.state === 'open' ? [{ name: s.name, stalenessMs: stat.stalenessMs, backlog: s.backlog() }] : [];
        }),
    });
  }

  /** The session's state: `connected | suspended | lost | reconnected | closed`. */
  get state(): SessionState {
    return this.#closed ? 'closed' : this[BACKEND].session.state;
  }

  /** The backend's kind: `memory`, `etcd` or `zookeeper`. */
  get backendKind(): string {
    return this[BACKEND].kind;
  }

  /**
   * Read-only views of this client's namespace: structs, listeners, members, lock queues,
   * elections, a struct's past versions, the store's endpoints (see {@link Inspector}). It
   * registers and writes nothing.
   */
  get inspect(): Inspector {
    this.#inspector ??= new Inspector(this[BACKEND], this.namespace);
    return this.#inspector;
  }

  /** Requests sent to the store so far, by operation (the cost contract is tested with these). */
  requestCounts(): Readonly<Record<string, number>> {
    return this[BACKEND].counters.snapshot();
  }

  /**
   * Requests that failed so far, by operation and error code (`TIMEOUT`, `CONNECTION`,
   * `UNAUTHORIZED`, ...): the store refused them or did not answer in time. Lost compares and
   * missing keys are outcomes, not failures; a request its caller aborted is not counted.
   */
  requestFailures(): readonly RequestFailures[] {
    return this[BACKEND].counters.failures();
  }

  /** Session state changes as an async iterator; ends when the client closes or `signal` fires. */
  states(options: { signal?: AbortSignal } = {}): AsyncIterable<SessionStateChange> {
    const queue = new AsyncQueue<SessionStateChange>(
      () => {
        this.off('state', onState);
        options.signal?.removeEventListener('abort', onAbort);
      },
      { holdsProcess: true },
    );
    const onState = (s: SessionStateChange): void => {
      queue.push(s);
      if (s.state === 'closed') queue.end();
    };
    const onAbort = (): void => queue.fail(abortError(options.signal!));
    if (this.#closed) queue.end();
    else if (options.signal?.aborted) onAbort();
    else {
      this.on('state', onState);
      options.signal?.addEventListener('abort', onAbort, { once: true });
    }
    return queue;
  }

  /**
   * Opens the struct `name`, creating it with `initial` if it does not exist (the first creator's
   * `initial` wins). Without `initial` a missing struct rejects `NOT_FOUND`. The instance
   * registers itself as a listener and starts its watch. With `schema: 'flags'` (a schema shipped
   * in `schemas/`) the struct is typed by the generated type of that schema.
   *
   * @example
   * ```ts
   * const flags = await client.open('flags', { schema: 'flags', initial: { beta: false, rollout: 0, regions: [] } });
   * flags.read().rollout; // number, from schemas/types/flags.ts
   * ```
   */
  open<K extends SchemaName>(
    name: string,
    options: OpenOptions<SchemaTypes[K]> & { readonly schema: K; readonly signal?: AbortSignal },
  ): Promise<SharedStruct<SchemaTypes[K]>>;
  /** A schema given by name goes through the overload above, so it always types the struct. */
  open<T>(name: string, options?: OpenOptions<T> & { readonly schema?: object; readonly signal?: AbortSignal }): Promise<SharedStruct<T>>;
  open<T>(name: string, options: OpenOptions<T> & { readonly signal?: AbortSignal } = {}): Promise<SharedStruct<T>> {
    return holding(() => this.#open(name, options));
  }

  async #open<T>(name: string, options: OpenOptions<T> & { readonly signal?: AbortSignal }): Promise<SharedStruct<T>> {
    this.#ensureOpen();
    validateName(name, 'struct name');
    const { signal, ...rest } = options;
    throwIfAborted(signal);
    const resolved = resolveOpenOptions<T>(rest);
    const struct = new SharedStruct<T>(this.#structContext(), name, `${this.namespace}/${name}`, resolved);
    try {
      await struct.start(signal);
    } catch (err) {
      await struct.close();
      throw err;
    }
    if (this.#closed) {
      await struct.close();
      throw new SharedStructError('CLOSED', 'the client was closed while the struct was being opened');
    }
    this.#structs.add(struct);
    return struct;
  }

  /**
   * Waits until someone creates `name`, then opens it. Rejects `TIMEOUT` after `timeoutMs`,
   * `ABORTED` when `signal` fires.
   */
  expect<K extends SchemaName>(name: string, options: ExpectOptions<SchemaTypes[K]> & { readonly schema: K }): Promise<SharedStruct<SchemaTypes[K]>>;
  expect<T>(name: string, options?: ExpectOptions<T> & { readonly schema?: object }): Promise<SharedStruct<T>>;
  expect<T>(name: string, options: ExpectOptions<T> = {}): Promise<SharedStruct<T>> {
    return holding(() => this.#expect(name, options));
  }

  async #expect<T>(name: string, options: ExpectOptions<T>): Promise<SharedStruct<T>> {
    this.#ensureOpen();
    validateName(name, 'struct name');
    const { signal, timeoutMs, ...openOptions } = options;
    resolveOpenOptions<T>(openOptions);
    if (timeoutMs !== undefined && (!Number.isInteger(timeoutMs) || timeoutMs < 1)) {
      throw new SharedStructError('INVALID_ARGUMENT', `option 'timeoutMs' must be an integer >= 1, got ${String(timeoutMs)}`);
    }
    throwIfAborted(signal);
    const timeout = timeoutMs === undefined ? undefined : AbortSignal.timeout(timeoutMs);
    const wait = anySignal(signal, timeout, this.#closer.signal);
    const key = `${this.namespace}/${name}/payload`;
    const backend = this[BACKEND];
    // Watch first, then read: a creation between the two is seen by one of them. A slow poll
    // covers a watch that is not yet established when the creation happens.
    const watch = backend.watch({ key }, { signal: wait });
    const appeared = new Promise<void>((resolve, reject) => {
      void (async () => {
        try {
          for await (const ev of watch) {
            if (ev.type === 'put' || (ev.type === 'reset' && ev.entries.length > 0)) return resolve();
          }
          reject(abortError(wait));
        } catch (err) {
          reject(err instanceof Error ? err : new SharedStructError('CONNECTION', `the watch for struct '${name}' failed`, { cause: err }));
        }
      })();
    });
    appeared.catch(() => {});
    try {
      for (;;) {
        if (await backend.stat(key, { signal: wait })) break;
        const poll = sleep(Math.min(1000, this.#options.requestTimeoutMs), wait).then(() => false);
        if (await Promise.race([appeared.then(() => true), poll])) break;
      }
    } catch (err) {
      if (timeout?.aborted && !signal?.aborted) {
        throw new SharedStructError('TIMEOUT', `struct '${name}' did not appear within ${timeoutMs} ms; check its name and the namespace ('${this.namespace}'), or wait longer (timeoutMs)`, { cause: err });
      }
      if (signal?.aborted) throw abortError(signal);
      throw err;
    } finally {
      watch.close();
    }
    return this.#open<T>(name, { ...openOptions, ...(signal && { signal }) });
  }

  /**
   * Acquires the distributed lock `name`, waiting in FIFO order (each waiter watches only its
   * predecessor). Rejects `LOCK_TIMEOUT` after `waitMs`, `ABORTED` on `signal`. The lock's
   * `signal` aborts with `LOCK_LOST` as soon as it may be gone; pass its `token` to the resources
   * you guard. See docs/LOCKS.md.
   *
   * @example
   * ```ts
   * const lock = await client.lock('nightly-job', { waitMs: 10_000 });
   * try { await runJob({ fencingToken: lock.token, signal: lock.signal }); }
   * finally { await lock.release(); }
   * ```
   */
  lock(name: string, options: LockOptions = {}): Promise<Lock> {
    return holding(async () => {
      this.#ensureOpen();
      validateName(name, 'lock name');
      const backend = await this.#backendFor(options.ttlMs);
      const startedAt = Date.now();
      return this.#telemetry.span('lock', { 'sharedstruct.lock': name }, async () => {
        let lock: Lock;
        try {
          lock = await acquireLock(backend, name, `${this.namespace}/_locks/${name}`, options);
        } catch (err) {
          this.#telemetry.lockWaited(name, Date.now() - startedAt, outcomeOf(err));
          throw err;
        }
        const acquiredAt = Date.now();
        this.#telemetry.lockWaited(name, acquiredAt - startedAt, 'ok');
        lock.onEnd((lost) => {
          const now = Date.now();
          const heldMs = now - acquiredAt;
          if (!lost) return this.#telemetry.lockEnded(name, heldMs);
          // Told synchronously as the loss is declared: how long the server could still have kept
          // the session (by this client's clock). Not positive: the lock may have gone first.
          const { lastContactAt, ttlMs } = backend.session;
          const marginMs = lastContactAt + ttlMs - now;
          this.#telemetry.lockEnded(name, heldMs, marginMs);
          this.#logger.warn(`lock '${name}' was lost after ${heldMs} ms held (token ${lock.token}, ${marginMs} ms before the server could expire the session); work done under it may race the next holder, so check the fencing token`, { lock: name, token: lock.token, heldMs, marginMs });
        });
        return lock;
      });
    });
  }

  /** Runs `fn` holding the lock `name` and always releases it; resolves what `fn` resolves. */
  withLock<R>(name: string, fn: (lock: Lock) => R | Promise<R>, options: LockOptions = {}): Promise<R> {
    return holding(async () => {
      const lock = await this.lock(name, options);
      try {
        return await fn(lock);
      } finally {
        await lock.release();
      }
    });
  }

  /**
   * A candidate in the election `name`. Nothing happens until `campaign()`.
   *
   * @example
   * ```ts
   * const election = client.election('scheduler', { id: 'node-1' });
   * election.on('deposed', () => stop());
   * await election.campaign();
   * ```
   */
  election(name: string, options: ElectionOptions = {}): Election {
    this.#ensureOpen();
    validateName(name, 'election name');
    const id = options.id ?? randomUUID();
    if (typeof id !== 'string' || id === '') throw new SharedStructError('INVALID_ARGUMENT', "option 'id' must be a non-empty string");
    if (options.data !== undefined) assertPlainJson(options.data);
    const election = new Election(this[BACKEND], name, `${this.namespace}/_elections/${name}`, id, options.data ?? null, this.#logger, this.#telemetry);
    election.on('elected', () => this.#telemetry.electionChanged(name, 'won'));
    election.on('deposed', ({ reason }) => {
      this.#telemetry.electionChanged(name, reason ? 'lost' : 'resigned');
      if (reason) this.#logger.warn(`leadership of '${name}' was lost: ${reason.message}`, { election: name, code: reason.code });
    });
    return election;
  }

  /**
   * Joins the group `group` as member `id` (an ephemeral registration that is re-created after a
   * lost session) and resolves the {@link Group}: `members()`, `changes()`, `leave()`.
   */
  join(group: string, options: { id?: string; data?: unknown; signal?: AbortSignal } = {}): Promise<Group> {
    return holding(async () => {
      this.#ensureOpen();
      validateName(group, 'group name');
      const id = options.id ?? randomUUID();
      validateName(id, 'member id');
      if (options.data !== undefined) assertPlainJson(options.data);
      const prefix = `${this.namespace}/_groups/${group}`;
      const leave = await this.#register(`${prefix}/${id}`, { id, since: Date.now(), data: options.data ?? null }, options.signal);
      return new Group(this[BACKEND], group, prefix, id, leave, this.#logger);
    });
  }

  /**
   * The durable server `name`: a struct whose changes come from a durable FIFO queue of messages
   * (`cast`, `call`), applied exactly once by any number of consumers (`serve()`). The state is
   * created with `initial` if it does not exist, like `open()`. See docs/SERVERS.md.
   *
   * @example
   * ```ts
   * const counter = await client.server<{ n: number }, { by: number }, number>('counter', {
   *   initial: { n: 0 },
   *   handle(draft, msg, ctx) { draft.n += msg.by; ctx.reply(draft.n); },
   * });
   * ```
   */
  server<State, Msg, Reply = unknown>(
    name: string,
    options: ServerOptions<State, Msg, Reply> & { readonly signal?: AbortSignal } = {},
  ): Promise<DurableServer<State, Msg, Reply>> {
    return holding(async () => {
      this.#ensureOpen();
      validateName(name, 'server name');
      const { signal, initial, schema, codec, handle, handleLocked, maxAttempts, maxQueueLength, ...rest } = options;
      const unknown = Object.keys(rest);
      if (unknown.length > 0) throw new SharedStructError('INVALID_ARGUMENT', `unknown option '${unknown[0]}' in server options`);
      if (handle !== undefined && typeof handle !== 'function') throw new SharedStructError('INVALID_ARGUMENT', "option 'handle' must be a function");
      if (handleLocked !== undefined && typeof handleLocked !== 'function') throw new SharedStructError('INVALID_ARGUMENT', "option 'handleLocked' must be a function");
      if (maxAttempts !== undefined && (!Number.isInteger(maxAttempts) || maxAttempts < 1)) {
        throw new SharedStructError('INVALID_ARGUMENT', `option 'maxAttempts' must be an integer >= 1, got ${String(maxAttempts)}`);
      }
      if (maxQueueLength !== undefined && (!Number.isInteger(maxQueueLength) || maxQueueLength < 1)) {
        throw new SharedStructError('INVALID_ARGUMENT', `option 'maxQueueLength' must be an integer >= 1, got ${String(maxQueueLength)}`);
      }
      if (!this[BACKEND].features.has('txn')) {
        throw new SharedStructError('UNSUPPORTED', `durable servers need multi-key transactions, which the ${this[BACKEND].kind} backend does not offer`);
      }
      const state = await this.#open<State>(name, { ...(initial !== undefined && { initial }), ...(schema !== undefined && { schema }), ...(codec !== undefined && { codec }), ...(signal && { signal }) });
      const server = new DurableServer<State, Msg, Reply>(
        { backend: this[BACKEND], logger: this.#logger, onClose: (s) => this.#servers.delete(s), telemetry: this.#telemetry },
        name,
        `${this.namespace}/${name}`,
        state,
        options,
      );
      this.#servers.add(server);
      return server;
    });
  }

  /** Closes every struct, ends the session (ephemerals go at once). Idempotent. */
  close(): Promise<void> {
    return holding(() => this.#close());
  }

  async #close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#closer.abort(new SharedStructError('CLOSED', 'this client is closed; connect() a new one'));
    await Promise.allSettled([...this.#servers].map((s) => s.close()));
    await Promise.allSettled([...this.#structs].map((s) => s.close()));
    await this.#reregistering?.catch(() => {});
    const extra = await Promise.allSettled(this.#sessions.values());
    await Promise.allSettled(extra.flatMap((r) => (r.status === 'fulfilled' ? [r.value.close()] : [])));
    await this[BACKEND].close();
    this.#unsubscribe();
    this.#telemetry.close();
    this.emit('state', Object.freeze({ state: 'closed', epoch: this.#epoch, at: Date.now() }));
    this.removeAllListeners();
  }

  /** Same as {@link close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // ---- internals -----------------------------------------------------------------------------

  #ensureOpen(): void {
    if (this.#closed) throw new SharedStructError('CLOSED', 'this client is closed; connect() a new one');
  }

  /** The backend whose session has `ttlMs` (the client's own when it matches or is not given). */
  #backendFor(ttlMs: number | undefined): Promise<Backend> {
    if (ttlMs === undefined || ttlMs === this[BACKEND].session.ttlMs) return Promise.resolve(this[BACKEND]);
    if (!Number.isInteger(ttlMs) || ttlMs < 1000) {
      return Promise.reject(new SharedStructError('INVALID_ARGUMENT', `option 'ttlMs' must be an integer >= 1000, got ${String(ttlMs)}`));
    }
    let session = this.#sessions.get(ttlMs);
    if (!session) {
      session = this.#spawn(ttlMs);
      this.#sessions.set(ttlMs, session);
      session.catch(() => this.#sessions.delete(ttlMs));
    }
    return session;
  }

  #structContext() {
    return {
      backend: this[BACKEND],
      logger: this.#logger,
      telemetry: this.#telemetry,
      register: async (key: string, value: unknown, signal?: AbortSignal) => {
        try {
          return await this.#register(key, value, signal);
        } catch (err) {
          // A read-only identity (a ZooKeeper ACL entry with 'r' only, an etcd role granted read):
          // the struct works without the registration, which only serves listeners().
          if (!isSharedStructError(err, 'UNAUTHORIZED')) throw err;
          this.#logger.warn(`not registered as a listener at '${key}': this identity may not create it (read-only?); the struct works, but listeners() does not show this instance`, { err });
          return () => Promise.resolve();
        }
      },
      members: (prefix: string, signal?: AbortSignal) => this.#members(prefix, signal),
      onClose: (s: StructHandle) => this.#structs.delete(s),
    };
  }

  /**
   * Creates an ephemeral key now and after every new session, until the returned function
   * removes it. The record gets a random `instance` field, so the stored bytes tell this
   * registration from anyone else's with the same key: a key held by someone else rejects
   * `CONFLICT` (nobody is evicted), and the remover deletes only a key holding these bytes.
   */
  async #register(key: string, value: unknown, signal?: AbortSignal): Promise<() => Promise<void>> {
    const registration: Registration = { key, bytes: jsonCodec.encode({ ...(value as object), instance: randomUUID() }), epoch: 0 };
    // Known before it is created: a new session that begins while the create is in flight (so
    // that it may land in the old session) re-creates it too, instead of never hearing of it.
    if (this.#registrations.has(key)) {
      throw new SharedStructError('CONFLICT', `'${key.slice(key.lastIndexOf('/') + 1)}' is already registered at '${key}' by this client; pick another id (or label)`);
    }
    this.#registrations.set(key, registration);
    try {
      await this.#createRegistration(registration, signal);
    } catch (err) {
      if (this.#registrations.get(key) === registration) this.#registrations.delete(key);
      throw err;
    }
    return async () => {
      if (this.#registrations.get(key) !== registration) return;
      this.#registrations.delete(key);
      if (this.#closed) return;
      const backend = this[BACKEND];
      const session = backend.session;
      if (registration.epoch === session.epoch && (session.state === 'connected' || session.state === 'reconnected')) {
        // Created in this session, which still holds it: nobody else can have taken the key.
        await backend.delete(key, { expectedVersion: 1 });
        return;
      }
      const current = await backend.get(key);
      if (current && sameBytes(current.value, registration.bytes)) await backend.delete(key, { expectedVersion: current.version });
    };
  }

  async #createRegistration(r: Registration, signal?: AbortSignal): Promise<void> {
    const backend = this[BACKEND];
    const epoch = backend.session.epoch;
    const created = await backend.create(r.key, r.bytes, { ephemeral: true, signal });
    if (!created.created) {
      if (!sameBytes(created.current.value, r.bytes)) {
        throw new SharedStructError('CONFLICT', `'${r.key.slice(r.key.lastIndexOf('/') + 1)}' is already registered at '${r.key}' by a live member; pick another id (or label), or wait for it to leave`);
      }
      // Ours, from an older session that the server has not dropped yet: replace it.
      await backend.delete(r.key, { expectedVersion: created.current.version, signal });
      const again = await backend.create(r.key, r.bytes, { ephemeral: true, signal });
      if (!again.created) throw new SharedStructError('CONFLICT', `'${r.key}' was registered by someone else while ours was being replaced`);
    }
    r.epoch = epoch;
  }

  async #members(prefix: string, signal?: AbortSignal): Promise<Member[]> {
    const members: Member[] = [];
    for (const e of await this[BACKEND].list(prefix, { signal })) {
      const member = toMember(e, prefix);
      if (member) members.push(member);
      else this.#logger.warn(`skipping undecodable registration '${e.key}'`);
    }
    return members;
  }

  #onState(change: SessionStateChange): void {
    if (this.#closed) return;
    this.#logger.info(`session ${change.state}`, { epoch: change.epoch, cause: change.cause?.message });
    this.#telemetry.sessionChanged(change.state);
    this.emit('state', change);
    if (change.epoch !== this.#epoch && change.state !== 'lost' && change.state !== 'closed') {
      this.#epoch = change.epoch;
      const previous = this.#reregistering ?? Promise.resolve();
      this.#reregistering = previous.then(() => this.#afterNewSession()).finally(() => (this.#reregistering = undefined));
    }
  }

  /**
   * A new session: re-create every registration, then let every struct re-read. A registration
   * someone else took meanwhile (`CONFLICT`) is given up and reported; transient failures are
   * retried until the client closes.
   */
  async #afterNewSession(): Promise<void> {
    const signal = this.#closer.signal;
    for (const r of [...this.#registrations.values()]) {
      try {
        await retry(() => (this.#registrations.get(r.key) === r ? this.#createRegistration(r, signal) : Promise.resolve()), {
          what: `re-creating registration '${r.key}'`,
          signal,
          onRetry: (err, attempt) =>
            this.emit('error', new SharedStructError(errorCode(err), `re-creating registration '${r.key}' failed (attempt ${attempt}); retrying`, { cause: err })),
        });
      } catch (err) {
        if (signal.aborted) return;
        if (this.#registrations.get(r.key) === r) this.#registrations.delete(r.key);
        this.emit('error', new SharedStructError(errorCode(err), `registration '${r.key}' was not re-created after the new session and is given up`, { cause: err }));
      }
    }
    for (const s of this.#structs) s.onNewSession();
  }
}

function errorCode(err: unknown): SharedStructError['code'] {
  return isSharedStructError(err) ? err.code : 'CONNECTION';
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.compare(a, b) === 0;
}

/** @internal The backend behind a client (for tests and adapters' own tooling). */
export function backendOf(client: Client): Backend {
  return client[BACKEND];
}
