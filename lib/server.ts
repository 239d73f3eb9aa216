/**
 * Durable servers (DGen's DGenServer): a struct whose changes come from a durable FIFO queue of
 * commands, each applied exactly once. The state write and the removal of its messages commit in
 * one transaction (etcd Txn, ZooKeeper multi); effects run after the commit; a handler that
 * needs a side effect first claims its message, which holds the queue while it runs.
 *
 * Layout under `<namespace>/<name>/`: `payload` (the state, an ordinary struct), `queue/<id>`
 * (messages, in create-revision order), `claims/<id>` (ephemeral: a consumer handling `<id>`
 * outside a transaction), `dead/<id>` (dead letters), `replies/<id>` (ephemeral, owned by the
 * caller of `call()`: the consumer writes the reply into it in the same transaction).
 */
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import type { Backend, Entry, Listed, SessionStateChange, TxnCompare, TxnOp, WatchEvent } from './backend.js';
import { jsonCodec, type Codec } from './codec.js';
import { SharedStructError, abortError, isSharedStructError, throwIfAborted } from './errors.js';
import { assertPlainJson, type DeepReadonly } from './json.js';
import type { Logger } from './backend.js';
import { QueueSlot } from './queue.js';
import type { SharedStruct } from './struct.js';
import { anySignal, sleep } from './util/abort.js';
import { TypedEmitter } from './util/emitter.js';
import { holding } from './util/keepalive.js';
import type { Telemetry } from './telemetry.js';

/** What a handler knows about the message it handles. */
export interface MessageInfo {
  /** The message's id (the last segment of its queue key). */
  readonly id: string;
  /** 1 for the first handling, counting the failed ones before it. */
  readonly attempt: number;
  /** When it was queued (`Date.now()` of the producer). */
  readonly enqueuedAt: number;
}

/** The context of {@link ServerOptions.handle}, which runs inside the transaction. */
export interface HandleContext<State, Reply> {
  readonly message: MessageInfo;
  /** The reply a `call()` gets, once this handling commits (plain JSON). */
  reply(value: Reply): void;
  /**
   * Runs `fn(state)` after this handling committed (with the state as committed), on this
   * consumer, at most once; never for a handling that did not commit.
   */
  after(fn: (state: DeepReadonly<State>) => void | Promise<void>): void;
  /**
   * Claims the message for {@link ServerOptions.handleLocked}: the handling stops here (this
   * throws, so nothing after it runs; the draft's changes for this message are dropped) and the
   * message is handled outside any transaction while the queue waits.
   */
  lock(): never;
}

/** The context of {@link ServerOptions.handleLocked}, which runs outside any transaction. */
export interface LockedContext<State, Reply> {
  readonly message: MessageInfo;
  /** Fencing token of the claim (decimal; compare as BigInt): pass it to the systems you call. */
  readonly token: string;
  /** Aborted `LOCK_LOST` as soon as the claim may be gone (the consumer's session). */
  readonly signal: AbortSignal;
  /** Checks the claim's loss deadline on the spot. */
  readonly held: boolean;
  /** The reply a `call()` gets, once this handling's result commits with the message's removal (plain JSON). */
  reply(value: Reply): void;
  /**
   * Runs `fn(state)` after this handling's result committed (with the state as committed), on
   * this consumer, at most once; never when the claim was lost before the commit.
   */
  after(fn: (state: DeepReadonly<State>) => void | Promise<void>): void;
}

/** Options of `client.server()`. */
export interface ServerOptions<State, Msg, Reply> {
  /** The state the server starts with when it does not exist (create-if-absent, as `open`). */
  readonly initial?: State;
  /**
   * Applies one message to the state: mutate `draft` or return the next state. It runs inside the
   * transaction and may run more than once (lost compares, batches that are re-planned), so it
   * must be pure and synchronous; put side effects in `ctx.after` or behind `ctx.lock()`.
   * Consumers need it; producers (`cast`, `call`) do not.
   */
  readonly handle?: (draft: State, msg: DeepReadonly<Msg>, ctx: HandleContext<State, Reply>) => State | void;
  /** Handles a message claimed with `ctx.lock()`, outside any transaction: it may have side effects (at least once) and returns the next state. */
  readonly handleLocked?: (state: DeepReadonly<State>, msg: DeepReadonly<Msg>, ctx: LockedContext<State, Reply>) => State | DeepReadonly<State> | void | Promise<State | DeepReadonly<State> | void>;
  /** Handlings of one message that may fail before it goes to the dead letters (default 5). */
  readonly maxAttempts?: number;
  /**
   * The most messages the queue may hold (default 10 000): `cast` and `call` reject `QUEUE_FULL`
   * (retryable; nothing is queued) when it is full, so producers that outrun their consumers
   * learn it instead of growing one parent without bound (ZooKeeper's advice against big
   * queues). Each producer counts the queue before its first message, after every tenth of the
   * bound of its own messages, and before every message once the queue was found half full; so
   * producers sending at once can pass the bound by the messages they have in flight.
   */
  readonly maxQueueLength?: number;
  /** JSON Schema of the state (as `open`). */
  readonly schema?: object;
  /**
   * Codec of the state (as `open`; default `jsonCodec`): every process that opens the server or
   * its state must pass the same one. Messages, replies, claims and dead letters are always JSON
   * (they are plain JSON by contract). The state uses the value layout.
   */
  readonly codec?: Codec;
}

/** A queued message, as `pending()` lists it. */
export interface QueuedMessage<Msg> {
  readonly id: string;
  readonly msg: DeepReadonly<Msg>;
  readonly enqueuedAt: number;
  /** Failed handlings so far. */
  readonly attempts: number;
  /** A consumer is handling it outside a transaction (`handleLocked`). */
  readonly claimed: boolean;
}

/** A message that failed `maxAttempts` times, as `deadLetters()` lists it. */
export interface DeadLetter<Msg> {
  readonly id: string;
  readonly msg: DeepReadonly<Msg>;
  readonly enqueuedAt: number;
  readonly attempts: number;
  readonly failedAt: number;
  /** The last handling's error. */
  readonly error: { readonly code?: string | undefined; readonly message: string };
}

/** Options of {@link DurableServer.serve}. */
export interface ServeOptions {
  /** Messages applied per transaction at most, 1 to 32 (default 16). */
  readonly batch?: number;
  readonly signal?: AbortSignal;
}

/** Events of a {@link DurableServer}. */
export interface ServerEvents {
  /** A handler failed (and will be retried, or its message went to the dead letters), an `after` effect threw, or a claim was lost. */
  error: SharedStructError;
  /** A message went to the dead letters. */
  dead: { readonly id: string; readonly error: SharedStructError };
}

/** A running consumer (`serve()`): stop it, or dispose it. */
export interface Consumer extends AsyncDisposable {
  /** Stops consuming after the handling in progress; resolves once stopped. Idempotent. */
  stop(): Promise<void>;
  /** Resolves when the consumer stops (stopped, its signal, or the server closed). */
  readonly done: Promise<void>;
}

/** The stored form of a message. */
interface Envelope {
  readonly msg: unknown;
  readonly enqueuedAt: number;
  readonly attempts: number;
  /** The reply key's id of a `call()`. */
  readonly replyTo?: string;
  readonly lastError?: { readonly code?: string; readonly message: string };
}

/** The stored form of a reply. */
type ReplyRecord = { readonly ok: true; readonly value?: unknown } | { readonly ok: false; readonly error: { readonly code: string; readonly message: string } };

/** Thrown by `ctx.lock()`; never escapes a consumer. */
class LockRequest extends Error {
  constructor() {
    super('ctx.lock() was called: the message is handled by handleLocked');
  }
}

/** Internal wiring a server receives from its client. */
export interface ServerContext {
  readonly backend: Backend;
  readonly logger: Logger;
  /** The client's instruments: told of every commit of this server's consumers. */
  readonly telemetry: Telemetry;
  onClose(server: { close(): Promise<void> }): void;
}

const EMPTY = new Uint8Array(0);

/** Default of {@link ServerOptions.maxQueueLength}. */
export const DEFAULT_MAX_QUEUE_LENGTH = 10_000;

/**
 * A durable server: its state is the struct `state` (an ordinary {@link SharedStruct}: every
 * process can `open(name)` it, read it and watch its changes), and its changes come from
 * messages queued by `cast` / `call` from anywhere and applied by any number of consumers
 * (`serve()`), each exactly once. See docs/SERVERS.md.
 *
 * @example
 * ```ts
 * const counter = await client.server<{ n: number }, { by: number }, number>('counter', {
 *   initial: { n: 0 },
 *   handle(draft, msg, ctx) { draft.n += msg.by; ctx.reply(draft.n); },
 * });
 * await using worker = await counter.serve();
 * await counter.cast({ by: 1 });
 * const n = await counter.call({ by: 2 }, { timeoutMs: 5000 }); // 3
 * ```
 */
export class DurableServer<State, Msg, Reply = unknown> extends TypedEmitter<ServerEvents> implements AsyncDisposable {
  /** The server's name: its state struct's name. */
  readonly name: string;
  /** The state, an ordinary struct: `read()`, `changes()`, `stat()`. Written only by consumers (and by anyone who writes the struct). */
  readonly state: SharedStruct<State>;
  readonly #ctx: ServerContext;
  readonly #backend: Backend;
  readonly #options: ServerOptions<State, Msg, Reply>;
  readonly #maxAttempts: number;
  readonly #maxQueueLength: number;
  /** The queue's length at this producer's last count (undefined: not counted yet). */
  #lengthSeen: number | undefined;
  /** This producer's messages queued since that count. */
  #sinceCount = 0;
  readonly #queue: string;
  readonly #claims: string;
  readonly #dead: string;
  readonly #replies: string;
  /** One producer's casts are sent one after another, so they keep their order. */
  #castChain: Promise<unknown> = Promise.resolve();
  readonly #consumers = new Set<Consumer>();
  readonly #closer = new AbortController();
  #closed = false;

  /** @internal Use `client.server()`. */
  constructor(ctx: ServerContext, name: string, key: string, state: SharedStruct<State>, options: ServerOptions<State, Msg, Reply>) {
    super((err) => ctx.logger.error(`unhandled error in server '${name}'`, { err }));
    this.#ctx = ctx;
    this.#backend = ctx.backend;
    this.name = name;
    this.state = state;
    this.#options = options;
    this.#maxAttempts = options.maxAttempts ?? 5;
    this.#maxQueueLength = options.maxQueueLength ?? DEFAULT_MAX_QUEUE_LENGTH;
    this.#queue = `${key}/queue`;
    this.#claims = `${key}/claims`;
    this.#dead = `${key}/dead`;
    this.#replies = `${key}/replies`;
  }

  // ---- producers -----------------------------------------------------------------------------

  /**
   * Queues `msg` and resolves `{ id }` once it is durably queued. Messages of one server object
   * are sent one after another, so they keep their order. `msg` must be plain JSON
   * (`INVALID_VALUE`) and fit the store's limit (`VALUE_TOO_LARGE`), checked before anything is
   * sent. A `TIMEOUT` or `CONNECTION` rejection leaves the outcome unknown (it may be queued).
   */
  cast(msg: Msg, options: { signal?: AbortSignal } = {}): Promise<{ readonly id: string }> {
    return holding(() => this.#enqueue(msg, undefined, options.signal));
  }

  /**
   * Queues `msg` and resolves what its handler gave to `ctx.reply()`, once that handling
   * committed (exactly once). The reply travels in a key bound to this client's session, so a
   * caller that goes away leaves nothing behind. `TIMEOUT` (after `timeoutMs`), `ABORTED` (the
   * signal) and `SESSION_LOST` leave the message queued: it will still be applied, and its reply
   * is dropped. `HANDLER_FAILED` when the message went to the dead letters. When it resolves,
   * this object's `state` already shows the commit that replied (read your own call).
   */
  call(msg: Msg, options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<DeepReadonly<Reply>> {
    return holding(() => this.#call(msg, options));
  }

  async #enqueue(msg: Msg, replyTo: string | undefined, signal: AbortSignal | undefined): Promise<{ readonly id: string }> {
    this.#ensureOpen();
    throwIfAborted(signal);
    assertPlainJson(msg);
    const envelope: Envelope = { msg, enqueuedAt: Date.now(), attempts: 0, ...(replyTo !== undefined && { replyTo }) };
    const bytes = jsonCodec.encode(envelope);
    const max = this.#backend.limits.maxValueBytes;
    if (bytes.byteLength > max) {
      throw new SharedStructError('VALUE_TOO_LARGE', `a message for server '${this.name}' is ${bytes.byteLength} bytes encoded and the ${this.#backend.kind} limit is ${max}; send less, or a reference to where the data is`);
    }
    const send = this.#castChain.then(async () => {
      await this.#checkRoom(signal);
      const created = await this.#backend.create(`${this.#queue}/m-`, bytes, { sequential: true, signal });
      this.#sinceCount += 1;
      return created;
    });
    this.#castChain = send.catch(() => {});
    const created = await send;
    if (!created.created) throw new SharedStructError('CONFLICT', `a message key of server '${this.name}' already existed`);
    return Object.freeze({ id: lastSegment(created.entry.key) });
  }

  async #call(msg: Msg, options: { timeoutMs?: number; signal?: AbortSignal }): Promise<DeepReadonly<Reply>> {
    this.#ensureOpen();
    const { timeoutMs, signal } = options;
    if (timeoutMs !== undefined && (!Number.isInteger(timeoutMs) || timeoutMs < 1)) {
      throw new SharedStructError('INVALID_ARGUMENT', `option 'timeoutMs' must be an integer >= 1, got ${String(timeoutMs)}`);
    }
    throwIfAborted(signal);
    assertPlainJson(msg);
    const timeout = timeoutMs === undefined ? undefined : AbortSignal.timeout(timeoutMs);
    const wait = anySignal(signal, timeout, this.#closer.signal);
    const rid = randomUUID();
    const key = `${this.#replies}/${rid}`;
    const created = await this.#backend.create(key, EMPTY, { ephemeral: true });
    if (!created.created) throw new SharedStructError('CONFLICT', `reply key '${key}' already existed`);
    const watch = this.#backend.watch({ key }, { afterRevision: created.entry.revision, signal: wait });
    let id: string | undefined;
    try {
      ({ id } = await this.#enqueue(msg, rid, undefined));
      const { record: reply, revision } = await waitForReply(key, watch, wait);
      await this.#catchUp(revision, signal);
      if (reply.ok) return reply.value as DeepReadonly<Reply>;
      throw new SharedStructError('HANDLER_FAILED', `message '${id}' of server '${this.name}' failed and went to the dead letters: ${reply.error.message}`, {
        cause: reply.error,
      });
    } catch (err) {
      const queued = id === undefined ? '' : ` message '${id}' stays queued and will be applied; its reply is dropped`;
      if (timeout?.aborted && !signal?.aborted) throw new SharedStructError('TIMEOUT', `no reply from server '${this.name}' within ${timeoutMs} ms;${queued}`, { cause: err });
      if (signal?.aborted) throw new SharedStructError('ABORTED', `the call to server '${this.name}' was aborted;${queued}`, { cause: signal.reason });
      if (isSharedStructError(err, 'SESSION_LOST')) throw new SharedStructError('SESSION_LOST', `the session ended while waiting for server '${this.name}';${queued}`, { cause: err });
      throw err;
    } finally {
      watch.close();
      void this.#backend.delete(key).catch(() => {});
    }
  }

  /**
   * Rejects `QUEUE_FULL` when the queue holds `maxQueueLength` messages. Counting costs one
   * request that sends no values; it is skipped while this producer's own messages since its
   * last count cannot have filled the queue past half (see {@link ServerOptions.maxQueueLength}).
   */
  async #checkRoom(signal: AbortSignal | undefined): Promise<void> {
    const max = this.#maxQueueLength;
    const seen = this.#lengthSeen;
    const due = seen === undefined || seen + this.#sinceCount >= max / 2 || this.#sinceCount >= Math.max(1, Math.floor(max / 10));
    if (!due) return;
    const length = await this.#backend.count(this.#queue, { signal });
    this.#lengthSeen = length;
    this.#sinceCount = 0;
    if (length >= max) {
      throw new SharedStructError('QUEUE_FULL', `the queue of server '${this.name}' holds ${length} messages (maxQueueLength ${max}); nothing was queued: retry after its consumers catch up, start more consumers (serve()), or raise maxQueueLength`);
    }
  }

  /**
   * Brings `state` up to the commit at `revision` (the reply's transaction), so a caller reads
   * its own call: the watch usually delivered it already; when not, one consistent read. Should
   * that read fail, the reply still counts (the message is applied) and the watch catches up.
   */
  async #catchUp(revision: bigint, signal: AbortSignal | undefined): Promise<void> {
    if (BigInt(this.state.stat().revision) >= revision) return;
    try {
      await this.state.readConsistent({ signal });
    } catch (err) {
      this.#ctx.logger.warn(`server '${this.name}': the state could not be read after a reply; it catches up from its watch`, { err });
    }
  }

  // ---- inspection ----------------------------------------------------------------------------

  /** The queued messages, in order. */
  pending(options: { signal?: AbortSignal } = {}): Promise<QueuedMessage<Msg>[]> {
    return holding(async () => {
      const [queue, claims] = await Promise.all([
        this.#backend.list(this.#queue, { signal: options.signal, consistent: true }),
        this.#backend.list(this.#claims, { signal: options.signal, consistent: true }),
      ]);
      const claimed = new Set(claims.map((c) => lastSegment(c.key)));
      return queue.flatMap((e) => {
        const env = decodeEnvelope(e);
        if (!env) return [];
        const id = lastSegment(e.key);
        return [Object.freeze({ id, msg: env.msg as DeepReadonly<Msg>, enqueuedAt: env.enqueuedAt, attempts: env.attempts, claimed: claimed.has(id) })];
      });
    });
  }

  /** The dead letters, oldest first. */
  deadLetters(options: { signal?: AbortSignal } = {}): Promise<DeadLetter<Msg>[]> {
    return holding(async () => {
      const dead = await this.#backend.list(this.#dead, { signal: options.signal, consistent: true });
      return dead.flatMap((e) => {
        const rec = decodeJson(e.value) as (Envelope & { failedAt?: number; error?: { code?: string; message?: string } }) | undefined;
        if (!rec || typeof rec !== 'object') return [];
        return [
          Object.freeze({
            id: lastSegment(e.key),
            msg: rec.msg as DeepReadonly<Msg>,
            enqueuedAt: rec.enqueuedAt,
            attempts: rec.attempts,
            failedAt: rec.failedAt ?? 0,
            error: Object.freeze({ code: rec.error?.code, message: rec.error?.message ?? 'unknown' }),
          }),
        ];
      });
    });
  }

  /**
   * Puts dead letter `id` back at the end of the queue, with its attempts reset, in one
   * transaction; resolves its new id. `NOT_FOUND` when there is no such dead letter.
   */
  retry(id: string, options: { signal?: AbortSignal } = {}): Promise<{ readonly id: string }> {
    return holding(async () => {
      this.#ensureOpen();
      const key = `${this.#dead}/${id}`;
      const dead = await this.#backend.get(key, { signal: options.signal, consistent: true });
      const rec = dead && (decodeJson(dead.value) as Envelope | undefined);
      if (!dead || !rec) throw new SharedStructError('NOT_FOUND', `server '${this.name}' has no dead letter '${id}'; list them with deadLetters()`);
      const envelope: Envelope = { msg: rec.msg, enqueuedAt: rec.enqueuedAt, attempts: 0 };
      const r = await this.#backend.txn(
        {
          compare: [],
          ops: [
            { op: 'delete', key, expectedVersion: dead.version },
            { op: 'create', key: `${this.#queue}/m-`, value: jsonCodec.encode(envelope), sequential: true },
          ],
        },
        { signal: options.signal },
      );
      if (!r.ok) throw new SharedStructError('CONFLICT', `dead letter '${id}' of server '${this.name}' changed meanwhile (retried or dropped by someone else)`);
      return Object.freeze({ id: lastSegment(r.entries[1]!.key) });
    });
  }

  /** Deletes dead letter `id` for good. `NOT_FOUND` when there is no such dead letter. */
  drop(id: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    return holding(async () => {
      this.#ensureOpen();
      const deleted = await this.#backend.delete(`${this.#dead}/${id}`, { signal: options.signal });
      if (!deleted) throw new SharedStructError('NOT_FOUND', `server '${this.name}' has no dead letter '${id}'; list them with deadLetters()`);
    });
  }

  // ---- consumers -----------------------------------------------------------------------------

  /**
   * Consumes the queue in this process until stopped: applies up to `batch` messages per
   * transaction, in order. Any number of consumers may run (in any processes); they compete
   * safely — a lost compare is a retry, never a second apply. An idle consumer only watches.
   * Consumption pauses while the session is suspended or lost and resumes after `reconnected`.
   */
  serve(options: ServeOptions = {}): Promise<Consumer> {
    return holding(() => {
      this.#ensureOpen();
      const handle = this.#options.handle;
      if (!handle) throw new SharedStructError('INVALID_ARGUMENT', `server '${this.name}' has no 'handle': pass it to client.server() in the processes that serve`);
      const batch = options.batch ?? 16;
      // etcd's --max-txn-ops (128 by default) bounds one transaction: a batch of n costs up to 3n + 2 ops.
      if (!Number.isInteger(batch) || batch < 1 || batch > 32) {
        throw new SharedStructError('INVALID_ARGUMENT', `option 'batch' must be an integer from 1 to 32, got ${String(batch)}`);
      }
      throwIfAborted(options.signal);
      const stop = new AbortController();
      const signal = anySignal(options.signal, stop.signal, this.#closer.signal);
      const loop = new ConsumerLoop<State, Msg, Reply>(
        {
          backend: this.#backend,
          name: this.name,
          state: this.state,
          options: this.#options,
          maxAttempts: this.#maxAttempts,
          queue: this.#queue,
          claims: this.#claims,
          dead: this.#dead,
          replies: this.#replies,
          report: (err) => this.#report(err),
          buried: (id, err) => this.emit('dead', { id, error: err }),
          telemetry: this.#ctx.telemetry,
        },
        handle,
        batch,
        signal,
      );
      const done = loop.run().catch((err: unknown) => {
        if (!signal.aborted) this.#report(isSharedStructError(err) ? err : new SharedStructError('CONNECTION', 'the consumer stopped', { cause: err }));
      });
      const consumer: Consumer = {
        done,
        stop: async () => {
          stop.abort(new SharedStructError('CLOSED', `the consumer of server '${this.name}' was stopped`));
          await done;
          this.#consumers.delete(consumer);
        },
        [Symbol.asyncDispose]: () => consumer.stop(),
      };
      this.#consumers.add(consumer);
      return Promise.resolve(consumer);
    });
  }

  /** Stops every consumer of this object and closes its state struct. Idempotent. */
  close(): Promise<void> {
    return holding(async () => {
      if (this.#closed) return;
      this.#closed = true;
      this.#closer.abort(new SharedStructError('CLOSED', `server '${this.name}' is closed`));
      await Promise.allSettled([...this.#consumers].map((c) => c.stop()));
      this.#ctx.onClose(this);
      await this.state.close();
      this.removeAllListeners();
    });
  }

  /** Same as {@link close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #report(err: SharedStructError): void {
    this.emit('error', err);
  }

  #ensureOpen(): void {
    if (this.#closed) throw new SharedStructError('CLOSED', `server '${this.name}' is closed`);
  }
}

/** What the consumer loop needs of its server. */
interface ServerInternals<State, Msg, Reply> {
  readonly backend: Backend;
  readonly name: string;
  readonly state: SharedStruct<State>;
  readonly options: ServerOptions<State, Msg, Reply>;
  readonly maxAttempts: number;
  readonly queue: string;
  readonly claims: string;
  readonly dead: string;
  readonly replies: string;
  /** A background problem, for the server's `error` event. */
  report(err: SharedStructError): void;
  /** A message went to the dead letters, for the server's `dead` event. */
  buried(id: string, err: SharedStructError): void;
  /** The client's instruments (applies, their latency, the handling span). */
  readonly telemetry: Telemetry;
}

/** One message of a batch, as read from the queue. */
interface Queued {
  readonly entry: Entry;
  readonly id: string;
  readonly env: Envelope;
}

/** Why a batch stopped before a message. */
type Stop = { readonly kind: 'lock'; readonly m: Queued } | { readonly kind: 'fail'; readonly m: Queued; readonly err: unknown };

/** The outcome of one handling inside a batch. */
interface Handled<State> {
  readonly m: Queued;
  readonly reply: { readonly set: boolean; readonly value: unknown };
  readonly after: readonly ((state: DeepReadonly<State>) => void | Promise<void>)[];
}

/** The consumer: list, plan a batch, commit it in one transaction, run its effects; repeat. */
class ConsumerLoop<State, Msg, Reply> {
  readonly #s: ServerInternals<State, Msg, Reply>;
  readonly #handle: NonNullable<ServerOptions<State, Msg, Reply>['handle']>;
  readonly #batch: number;
  readonly #signal: AbortSignal;
  /** Claims known from the claims watch (message id → claim entry). */
  readonly #claimed = new Map<string, Entry>();
  /** Reply keys found gone (the caller went away): their replies are no longer written. */
  readonly #goneReplies = new Set<string>();
  #wake: (() => void) | undefined;
  #dirty = true;
  /**
   * The queue's head as of this consumer's last commit, listed inside that commit's transaction
   * (where the store reads in a transaction); the next round takes it instead of listing. It
   * may be stale by then: a message taken by another consumer fails the compare, which is a
   * lost round (and a fresh list), never a double apply.
   */
  #prefetched: Listed | undefined;
  /** The newest revision the queue's watch has reported. */
  #queueRevision = 0n;

  constructor(server: ServerInternals<State, Msg, Reply>, handle: NonNullable<ServerOptions<State, Msg, Reply>['handle']>, batch: number, signal: AbortSignal) {
    this.#s = server;
    this.#handle = handle;
    this.#batch = batch;
    this.#signal = signal;
  }

  async run(): Promise<void> {
    const { backend } = this.#s;
    const signal = this.#signal;
    // Watch first, then read: a message or a claim between the two is seen by one of them.
    const queueWatch = backend.watch({ prefix: this.#s.queue }, { signal, keysOnly: true });
    const claimsWatch = backend.watch({ prefix: this.#s.claims }, { signal, keysOnly: true });
    const pumps = [this.#pump(queueWatch, (ev) => this.#onQueueEvent(ev)), this.#pump(claimsWatch, (ev) => this.#onClaimEvent(ev))];
    try {
      for (const c of await backend.list(this.#s.claims, { signal })) this.#claimed.set(lastSegment(c.key), c);
      while (!signal.aborted) {
        await this.#sessionUsable();
        if (!this.#dirty) await this.#idle();
        if (signal.aborted) break;
        this.#dirty = false;
        try {
          if (await this.#round()) this.#dirty = true;
        } catch (err) {
          if (signal.aborted) break;
          this.#dirty = true;
          const e = isSharedStructError(err) ? err : new SharedStructError('CONNECTION', 'the consumer failed', { cause: err });
          if (!e.retryable) throw e;
          this.#s.report(new SharedStructError(e.code, `the consumer of server '${this.#s.name}' will retry after: ${e.message}`, { cause: e }));
          await sleep(250, signal).catch(() => {});
        }
      }
    } finally {
      queueWatch.close();
      claimsWatch.close();
      await Promise.allSettled(pumps);
    }
  }

  /** Wakes the loop on every event of a watch (and lets `onEvent` see it). */
  async #pump(watch: AsyncIterable<WatchEvent>, onEvent: (ev: WatchEvent) => void): Promise<void> {
    try {
      for await (const ev of watch) {
        onEvent(ev);
        this.#poke();
      }
    } catch {
      // The loop's own requests report the failure; the next round lists again.
    }
    this.#poke();
  }

  /** A queue change newer than the prefetched head makes it unusable (a message added, or taken elsewhere). */
  #onQueueEvent(ev: WatchEvent): void {
    if (ev.type === 'progress') return; // nothing changed
    const revision = ev.type === 'put' ? ev.entry.revision : ev.revision;
    if (revision > this.#queueRevision) this.#queueRevision = revision;
    if (ev.type === 'reset' || (this.#prefetched && revision > this.#prefetched.revision)) this.#prefetched = undefined;
  }

  #onClaimEvent(ev: WatchEvent): void {
    if (ev.type === 'put') this.#claimed.set(lastSegment(ev.entry.key), ev.entry);
    else if (ev.type === 'delete') this.#claimed.delete(lastSegment(ev.key));
    else if (ev.type === 'reset') {
      this.#claimed.clear();
      for (const e of ev.entries) this.#claimed.set(lastSegment(e.key), e);
    }
  }

  #poke(): void {
    this.#dirty = true;
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** Waits for a watch event (no request while idle). */
  #idle(): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        this.#signal.removeEventListener('abort', done);
        resolve();
      };
      this.#wake = done;
      this.#signal.addEventListener('abort', done, { once: true });
    });
  }

  /** Waits while the session is suspended or lost. */
  async #sessionUsable(): Promise<void> {
    const session = this.#s.backend.session;
    const usable = (): boolean => session.state === 'connected' || session.state === 'reconnected';
    if (usable()) return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        unsubscribe();
        this.#signal.removeEventListener('abort', done);
        resolve();
      };
      const unsubscribe = session.onStateChange((c: SessionStateChange) => {
        if (c.state === 'connected' || c.state === 'reconnected' || c.state === 'closed') done();
      });
      this.#signal.addEventListener('abort', done, { once: true });
      if (usable()) done();
    });
    this.#dirty = true;
  }

  /** One round: true when it did something (look again at once), false when there is nothing to do until a watch event. */
  async #round(): Promise<boolean> {
    const { backend } = this.#s;
    // The head the last commit listed in its own request (etcd), else one list.
    const prefetched = this.#prefetched;
    this.#prefetched = undefined;
    const entries = prefetched?.entries ?? (await backend.list(this.#s.queue, { signal: this.#signal, limit: this.#batch }));
    if (entries.length === 0) return false;
    const take: Queued[] = [];
    for (const entry of entries) {
      const id = lastSegment(entry.key);
      if (this.#claimed.has(id)) break; // the queue does not move past a claimed message
      const env = decodeEnvelope(entry);
      if (!env) {
        if (take.length === 0) {
          await this.#bury({ entry, id, env: { msg: null, enqueuedAt: 0, attempts: 0 } }, new SharedStructError('CORRUPT_REMOTE_VALUE', `message '${id}' of server '${this.#s.name}' is not a message record`), []);
          return true;
        }
        break;
      }
      take.push({ entry, id, env });
      if (take.length === this.#batch) break;
    }
    if (take.length === 0) return false; // the head is claimed: wait for the claim to go
    let handled: Handled<State>[] = [];
    let stop: Stop | undefined;
    const result = await this.#s.telemetry.span('server.handle', { 'sharedstruct.server': this.#s.name, 'sharedstruct.messages': take.length }, async (span) => {
      const r = await this.#transact(take, (plan) => ((handled = plan.handled), (stop = plan.stop)));
      span.setAttribute('sharedstruct.handled', handled.length);
      span.setAttribute('sharedstruct.committed', r?.ok === true);
      return r;
    });
    if (result?.ok) {
      // Kept only if the queue's watch has brought nothing newer (its events and this reply
      // travel apart); any newer event drops it (see #onQueueEvent).
      if (result.listed && result.listed.revision >= this.#queueRevision) this.#prefetched = result.listed;
      this.#applied(handled);
      await this.#effects(handled, result.value);
      return true;
    }
    if (result) {
      await this.#afterLostCompare(handled.map((h) => h.m));
      return true;
    }
    // Nothing to commit before the head: it asked for the lock, or its handler threw.
    if (stop!.kind === 'lock') await this.#handleLocked(stop!.m);
    else await this.#failed(stop!.m, stop!.err);
    return true;
  }

  /** The state's transaction for the messages `take`: their handlers' draft, their removal and replies. */
  #transact(take: readonly Queued[], planned: (plan: { handled: Handled<State>[]; stop: Stop | undefined }) => void) {
    return this.#s.state.transact(
      (makeDraft) => {
        const plan = this.#plan(makeDraft, take);
        planned(plan);
        if (plan.handled.length === 0) return undefined;
        return {
          next: plan.draft,
          compare: plan.handled.map((h): TxnCompare => ({ key: h.m.entry.key, version: h.m.entry.version })),
          ops: [...plan.handled.map((h): TxnOp => ({ op: 'delete', key: h.m.entry.key })), ...this.#replyOps(plan.handled)],
          // The next round's head, as of this commit, in the same request where the store can.
          list: { prefix: this.#s.queue, limit: this.#batch },
        };
      },
      { signal: this.#signal },
    );
  }

  /**
   * Runs the handlers of `take` in order on one draft, and stops before the first message that
   * asks for the lock or throws. When one throws, the draft it touched is thrown away and the
   * messages before it run again on a fresh draft (handlers are pure).
   */
  #plan(makeDraft: () => State, take: readonly Queued[]): { handled: Handled<State>[]; stop: Stop | undefined; draft: State } {
    const run = (count: number): { handled: Handled<State>[]; stop?: Stop; stopAt: number; draft: State } => {
      const handled: Handled<State>[] = [];
      let draft = makeDraft();
      for (let i = 0; i < count; i++) {
        const h = this.#handleOne(draft, take[i]!);
        if ('stop' in h) return { handled, stop: h.stop, stopAt: i, draft };
        draft = h.draft;
        handled.push(h.handled);
      }
      return { handled, stopAt: count, draft };
    };
    let planned = run(take.length);
    const stop = planned.stop;
    if (stop?.kind === 'fail' && planned.handled.length > 0) planned = run(planned.stopAt);
    return { handled: planned.handled, stop, draft: planned.draft };
  }

  /** One handler run on `draft`. */
  #handleOne(draft: State, m: Queued): { draft: State; handled: Handled<State> } | { stop: Stop } {
    let locked = false;
    const reply = { set: false, value: undefined as unknown };
    const after: ((state: DeepReadonly<State>) => void | Promise<void>)[] = [];
    const ctx: HandleContext<State, Reply> = Object.freeze({
      message: Object.freeze({ id: m.id, attempt: m.env.attempts + 1, enqueuedAt: m.env.enqueuedAt }),
      reply: (value: Reply) => {
        assertPlainJson(value);
        reply.set = true;
        reply.value = value;
      },
      after: (fn: (state: DeepReadonly<State>) => void | Promise<void>) => {
        if (typeof fn !== 'function') throw new SharedStructError('INVALID_ARGUMENT', 'ctx.after(fn) needs a function');
        after.push(fn);
      },
      lock: (): never => {
        locked = true;
        throw new LockRequest();
      },
    });
    try {
      const out = this.#handle(draft, m.env.msg as DeepReadonly<Msg>, ctx) as unknown;
      if (locked) return this.#lockStop(m);
      if (out instanceof Promise || (typeof out === 'object' && out !== null && typeof (out as { then?: unknown }).then === 'function')) {
        void (out as Promise<unknown>).catch(() => {});
        throw new SharedStructError('INVALID_ARGUMENT', 'handle() must be synchronous (it runs inside the transaction and may run more than once); do async work in handleLocked after ctx.lock(), or in ctx.after()');
      }
      return { draft: out === undefined ? draft : (out as State), handled: { m, reply, after } };
    } catch (err) {
      if (locked || err instanceof LockRequest) return this.#lockStop(m);
      return { stop: { kind: 'fail', m, err } };
    }
  }

  #lockStop(m: Queued): { stop: Stop } {
    if (!this.#s.options.handleLocked) {
      return { stop: { kind: 'fail', m, err: new SharedStructError('INVALID_ARGUMENT', `ctx.lock() was called but server '${this.#s.name}' has no handleLocked`) } };
    }
    return { stop: { kind: 'lock', m } };
  }

  /** The reply ops of `handled` (a reply to a caller that went away is dropped). */
  #replyOps(handled: readonly Pick<Handled<State>, 'm' | 'reply'>[]): TxnOp[] {
    const ops: TxnOp[] = [];
    for (const h of handled) {
      const rid = h.m.env.replyTo;
      if (rid === undefined || this.#goneReplies.has(rid)) continue;
      const record: ReplyRecord = h.reply.set ? { ok: true, value: h.reply.value } : { ok: true };
      ops.push({ op: 'put', key: `${this.#s.replies}/${rid}`, value: jsonCodec.encode(record) });
    }
    return ops;
  }

  #applied(handled: readonly Handled<State>[]): void {
    const now = Date.now();
    this.#s.telemetry.applied(this.#s.name, handled.map((h) => now - h.m.env.enqueuedAt));
  }

  /** After a lost compare: bring the state up to date, and forget the replies whose callers went away. */
  async #afterLostCompare(messages: readonly Queued[]): Promise<void> {
    const { backend } = this.#s;
    await this.#s.state.readConsistent({ signal: this.#signal });
    for (const m of messages) {
      const rid = m.env.replyTo;
      if (rid === undefined || this.#goneReplies.has(rid)) continue;
      if (!(await backend.stat(`${this.#s.replies}/${rid}`, { signal: this.#signal }))) this.#goneReplies.add(rid);
    }
  }

  /** Runs the `after` effects of committed handlings, in order; a throwing effect is reported. */
  async #effects(handled: readonly Handled<State>[], state: DeepReadonly<State>): Promise<void> {
    for (const h of handled) {
      if (h.m.env.replyTo !== undefined) this.#goneReplies.delete(h.m.env.replyTo);
      for (const fn of h.after) {
        try {
          await fn(state);
        } catch (err) {
          this.#s.report(new SharedStructError('HANDLER_FAILED', `an after() effect of message '${h.m.id}' of server '${this.#s.name}' threw (the message is applied; effects are not retried)`, { cause: err }));
        }
      }
    }
  }

  /** A claimed message: claim it, run `handleLocked` outside any transaction, commit its result while the claim holds. */
  async #handleLocked(m: Queued): Promise<void> {
    const { backend, state, options } = this.#s;
    const claimKey = `${this.#s.claims}/${m.id}`;
    const epoch = backend.session.epoch;
    const record = { consumer: randomUUID(), host: hostname(), pid: process.pid, since: Date.now() };
    const created = await backend.create(claimKey, jsonCodec.encode(record), { ephemeral: true });
    if (!created.created) return; // someone else claimed it first: wait for their claim to go
    this.#claimed.set(m.id, created.entry);
    const slot = new QueueSlot(backend, this.#s.claims, created.entry, epoch, { sharedName: true });
    const monitor = slot.hold(`claim of message '${m.id}' of server '${this.#s.name}'`);
    try {
      // Still queued, as we listed it? (Another consumer may have applied it before our claim.)
      const current = await backend.get(m.entry.key, { signal: this.#signal, consistent: true });
      if (!current || current.createRevision !== m.entry.createRevision) return;
      const env = decodeEnvelope(current) ?? m.env;
      const fresh: Queued = { entry: current, id: m.id, env };
      const value = await state.readConsistent({ signal: this.#signal });
      const base = state.stat().version;
      // The claim may already be gone (the session was replaced while we claimed): the effect
      // must not run for a claim that cannot commit.
      if (!monitor.check()) return;
      const reply = { set: false, value: undefined as unknown };
      const after: ((state: DeepReadonly<State>) => void | Promise<void>)[] = [];
      const ctx: LockedContext<State, Reply> = Object.freeze({
        message: Object.freeze({ id: m.id, attempt: env.attempts + 1, enqueuedAt: env.enqueuedAt }),
        token: created.entry.createRevision.toString(),
        signal: monitor.signal,
        get held() {
          return monitor.check();
        },
        reply: (v: Reply) => {
          assertPlainJson(v);
          reply.set = true;
          reply.value = v;
        },
        after: (fn: (state: DeepReadonly<State>) => void | Promise<void>) => void after.push(fn),
      });
      let out: State | DeepReadonly<State> | void;
      try {
        out = await options.handleLocked!(value, env.msg as DeepReadonly<Msg>, ctx);
      } catch (err) {
        await this.#failed(fresh, err, claimKey);
        return;
      }
      if (!monitor.check()) {
        this.#s.report(new SharedStructError('LOCK_LOST', `the claim of message '${m.id}' of server '${this.#s.name}' was lost before its result committed; the next consumer handles it again`, { cause: monitor.signal.reason }));
        return;
      }
      const handled = [{ m: fresh, reply, after }];
      const r = await state.transact(
        (makeDraft) => ({
          next: out === undefined ? makeDraft() : (out as State),
          compare: [
            { key: claimKey, version: 1, createRevision: created.entry.createRevision },
            { key: current.key, version: current.version },
          ],
          ops: [{ op: 'delete', key: current.key }, { op: 'delete', key: claimKey }, ...this.#replyOps(handled)],
        }),
        { signal: this.#signal, base },
      );
      if (r?.ok) {
        this.#applied(handled);
        await this.#effects(handled, r.value);
        return;
      }
      await this.#afterLostCompare([fresh]);
      if (!monitor.check()) return;
      // The state moved while handleLocked ran (a writer outside the queue): its result is not
      // written over that change; this counts as a failed handling and is tried again.
      await this.#failed(fresh, new SharedStructError('CONFLICT', `the state of server '${this.#s.name}' changed while handleLocked ran on message '${m.id}'`), claimKey);
    } finally {
      await slot.release().catch(() => {});
    }
  }

  /** A handling failed: count the attempt durably, or move the message to the dead letters. */
  async #failed(m: Queued, err: unknown, claimKey?: string): Promise<void> {
    const { backend, name, maxAttempts } = this.#s;
    const attempts = m.env.attempts + 1;
    const error = { code: isSharedStructError(err) ? err.code : undefined, message: err instanceof Error ? err.message : String(err) };
    const releaseClaim: TxnOp[] = claimKey ? [{ op: 'delete', key: claimKey }] : [];
    if (attempts < maxAttempts) {
      const env: Envelope = { ...m.env, attempts, lastError: error };
      const r = await backend.txn({ compare: [], ops: [{ op: 'put', key: m.entry.key, value: jsonCodec.encode(env), expectedVersion: m.entry.version }, ...releaseClaim] }, { signal: this.#signal });
      if (r.ok) {
        this.#s.report(new SharedStructError('HANDLER_FAILED', `the handler of server '${name}' threw on message '${m.id}' (attempt ${attempts} of ${maxAttempts}); it will be tried again`, { cause: err }));
        // Back off before the next attempt, so a failing message does not spin.
        await sleep(Math.min(2000, 25 * 2 ** attempts), this.#signal).catch(() => {});
      }
      return;
    }
    await this.#bury(m, err, releaseClaim);
  }

  /** Moves a message to the dead letters in one transaction (with its caller's failure reply), and tells. */
  async #bury(m: Queued, err: unknown, extra: readonly TxnOp[]): Promise<void> {
    const { backend, name, maxAttempts } = this.#s;
    const error = { code: isSharedStructError(err) ? err.code : undefined, message: err instanceof Error ? err.message : String(err) };
    const record = { ...m.env, attempts: m.env.attempts + 1, failedAt: Date.now(), error };
    const ops: TxnOp[] = [
      { op: 'delete', key: m.entry.key, expectedVersion: m.entry.version },
      { op: 'create', key: `${this.#s.dead}/${m.id}`, value: jsonCodec.encode(record) },
      ...extra,
    ];
    const rid = m.env.replyTo;
    const withReply = rid !== undefined && !this.#goneReplies.has(rid);
    const replyOp = (): TxnOp => ({
      op: 'put',
      key: `${this.#s.replies}/${rid}`,
      value: jsonCodec.encode({ ok: false, error: { code: error.code ?? 'HANDLER_FAILED', message: error.message } } satisfies ReplyRecord),
    });
    let r = await backend.txn({ compare: [], ops: withReply ? [...ops, replyOp()] : ops }, { signal: this.#signal });
    if (!r.ok && withReply && !(await backend.stat(`${this.#s.replies}/${rid}`, { signal: this.#signal }))) {
      this.#goneReplies.add(rid);
      r = await backend.txn({ compare: [], ops }, { signal: this.#signal });
    }
    if (!r.ok) return; // someone else moved it first
    const reason = new SharedStructError('HANDLER_FAILED', `message '${m.id}' of server '${name}' failed ${Math.min(maxAttempts, m.env.attempts + 1)} time(s) and went to the dead letters: ${error.message}; inspect it with deadLetters(), then retry(id) or drop(id)`, { cause: err });
    this.#s.buried(m.id, reason);
    this.#s.report(reason);
  }
}

/** Waits for the reply in `key` (written by the consumer's transaction). */
async function waitForReply(key: string, watch: AsyncIterable<WatchEvent>, signal: AbortSignal): Promise<{ record: ReplyRecord; revision: bigint }> {
  // The reply may already be there (the watch starts after our create).
  for await (const ev of watch) {
    if (ev.type === 'put' && ev.entry.value.byteLength > 0) return { record: decodeReply(ev.entry.value), revision: ev.entry.revision };
    if (ev.type === 'reset') {
      const e = ev.entries.find((x) => x.key === key);
      if (!e) throw new SharedStructError('SESSION_LOST', `reply key '${key}' is gone (its session ended)`);
      if (e.value.byteLength > 0) return { record: decodeReply(e.value), revision: e.revision };
    }
    if (ev.type === 'delete') throw new SharedStructError('SESSION_LOST', `reply key '${key}' is gone (its session ended)`);
  }
  throw abortError(signal);
}

function decodeReply(bytes: Uint8Array): ReplyRecord {
  const r = decodeJson(bytes) as ReplyRecord | undefined;
  if (!r || typeof r !== 'object' || typeof r.ok !== 'boolean') throw new SharedStructError('CORRUPT_REMOTE_VALUE', 'a reply record could not be decoded');
  return r;
}

function decodeEnvelope(entry: Entry): Envelope | undefined {
  const env = decodeJson(entry.value) as Envelope | undefined;
  if (!env || typeof env !== 'object' || !('msg' in env) || typeof env.attempts !== 'number') return undefined;
  return env;
}

function decodeJson(bytes: Uint8Array): unknown {
  try {
    return jsonCodec.decode(bytes);
  } catch {
    return undefined;
  }
}

function lastSegment(key: string): string {
  return key.slice(key.lastIndexOf('/') + 1);
}

