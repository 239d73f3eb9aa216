/** Leader election on the lock queue: the head of `_elections/<name>` leads until it resigns or is lost. */
import { randomUUID } from 'node:crypto';
import type { Backend, Entry, Logger } from './backend.js';
import { jsonCodec } from './codec.js';
import { SharedStructError, abortError, throwIfAborted } from './errors.js';
import { QueueSlot, type LossMonitor } from './queue.js';
import { anySignal } from './util/abort.js';
import { AsyncQueue } from './util/async-queue.js';
import { follow } from './util/follow.js';
import { TypedEmitter } from './util/emitter.js';
import { holding } from './util/keepalive.js';
import type { Telemetry } from './telemetry.js';

/** Who leads. */
export interface Leader {
  readonly id: string;
  readonly data: unknown;
  /** Fencing token of the leadership (create revision of the leader's key), decimal. */
  readonly token: string;
}

/**
 * This candidate's own term as leader, as `campaign()` resolves it. Like a {@link Lock}: do the
 * leader's work while `signal` is not aborted, pass `token` to what you write, and dispose it
 * (`await using`) or `resign()` to step down.
 */
export interface Leadership extends Leader, AsyncDisposable {
  /** Aborted with `LOCK_LOST` as soon as this term may be over (deposed); never by `resign()`. */
  readonly signal: AbortSignal;
  /** True while this term lasts; checks the loss deadline on the spot, as `Lock.held` does. */
  readonly held: boolean;
  /** Ends this term (the election's `resign()`). */
  resign(): Promise<void>;
}

/** Options of `client.election()`. */
export interface ElectionOptions {
  /** This candidate's id (default: a random UUID). */
  readonly id?: string;
  /** Plain JSON published with the candidacy (an address, a version). */
  readonly data?: unknown;
}

/** Events of an {@link Election}. */
export interface ElectionEvents {
  /** This candidate became the leader. */
  elected: Leader;
  /** This candidate stopped leading: resigned, or lost its session (before anyone else can be elected). */
  deposed: { readonly leader: Leader; readonly reason: SharedStructError | undefined };
  error: SharedStructError;
}

function toLeader(entry: Entry): Leader | undefined {
  let record: { id?: unknown; data?: unknown };
  try {
    record = jsonCodec.decode(entry.value) as { id?: unknown; data?: unknown };
  } catch {
    return undefined;
  }
  if (typeof record !== 'object' || record === null || typeof record.id !== 'string') return undefined;
  return Object.freeze({ id: record.id, data: record.data, token: entry.createRevision.toString() });
}

/** A term: the slot at the head of the queue and what watches over it. */
class Term implements Leadership {
  readonly id: string;
  readonly data: unknown;
  readonly token: string;
  readonly #slot: QueueSlot;
  readonly #monitor: LossMonitor;
  readonly #election: Election;

  constructor(election: Election, slot: QueueSlot, monitor: LossMonitor, id: string, data: unknown) {
    this.#election = election;
    this.#slot = slot;
    this.#monitor = monitor;
    this.id = id;
    this.data = data;
    this.token = slot.token.toString();
  }

  get signal(): AbortSignal {
    return this.#monitor.signal;
  }

  get held(): boolean {
    return this.#monitor.check();
  }

  resign(): Promise<void> {
    return this.#election.resign();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.resign();
  }

  /** Deletes the term's queue key (see {@link QueueSlot.release}). */
  letGo(): Promise<void> {
    return this.#slot.release();
  }

  /** The public, frozen view for events. */
  leader(): Leader {
    return Object.freeze({ id: this.id, data: this.data, token: this.token });
  }
}

/**
 * One candidate in an election. `campaign()` waits in FIFO order and resolves this candidate's
 * {@link Leadership} once elected; the term lasts until `resign()` or until its session may be
 * lost, when it is deposed locally first (see docs/LOCKS.md for the margin) and its queue key is
 * deleted as soon as the store can be reached, so the next candidate is elected.
 *
 * @example
 * ```ts
 * const election = client.election('workers', { id: 'w1' });
 * await using term = await election.campaign();
 * await work({ signal: term.signal, fencingToken: term.token });
 * ```
 */
export class Election extends TypedEmitter<ElectionEvents> implements AsyncDisposable {
  readonly name: string;
  readonly id: string;
  readonly #backend: Backend;
  readonly #parent: string;
  readonly #data: unknown;
  readonly #telemetry: Telemetry;
  #term: Term | undefined;
  /** The campaign in progress, and how `resign()` withdraws it. */
  #campaign: { readonly promise: Promise<Leadership>; readonly withdraw: AbortController } | undefined;

  /** @internal Use `client.election()`. */
  constructor(backend: Backend, name: string, parent: string, id: string, data: unknown, logger: Logger, telemetry: Telemetry) {
    super((err) => logger.error(`unhandled error in election '${name}'`, { err }));
    this.#backend = backend;
    this.#telemetry = telemetry;
    this.name = name;
    this.#parent = parent;
    this.id = id;
    this.#data = data;
  }

  /** True while this candidate leads; checks the loss deadline on the spot, as `Lock.held` does. */
  get isLeader(): boolean {
    return this.#term?.held ?? false;
  }

  /**
   * Joins the election and resolves once this candidate is the leader, with its
   * {@link Leadership}. Rejects `ABORTED` when `signal` fires or `resign()` is called first (the
   * candidacy is withdrawn: its key is deleted and it is never elected afterwards). Calling it
   * while campaigning returns the same campaign; while leading, the same leadership.
   */
  campaign(options: { signal?: AbortSignal } = {}): Promise<Leadership> {
    const term = this.#term;
    if (term && term.held) return Promise.resolve(term);
    if (!this.#campaign) {
      const withdraw = new AbortController();
      const signal = anySignal(options.signal, withdraw.signal);
      const run = (): Promise<Leadership> => this.#run(signal);
      const promise = holding(() => this.#telemetry.span('campaign', { 'sharedstruct.election': this.name }, run)).finally(() => {
        if (this.#campaign?.promise === promise) this.#campaign = undefined;
      });
      this.#campaign = { promise, withdraw };
    }
    return this.#campaign.promise;
  }

  async #run(signal: AbortSignal): Promise<Leadership> {
    throwIfAborted(signal);
    // `instance` makes the record unique to this campaign, so a stray key can be recognised.
    const record = { id: this.id, data: this.#data, instance: randomUUID() };
    for (;;) {
      let slot: QueueSlot | undefined;
      try {
        slot = await QueueSlot.enqueue(this.#backend, this.#parent, record, signal);
        await slot.waitForHead(signal);
        throwIfAborted(signal);
        const monitor = slot.hold(`leadership of '${this.name}'`);
        // Lost before it began (the deadline passed while we waited): its key is going; queue again.
        if (monitor.signal.aborted) continue;
        const term = new Term(this, slot, monitor, this.id, this.#data);
        this.#term = term;
        monitor.signal.addEventListener('abort', () => this.#depose(term, abortError(monitor.signal)), { once: true });
        this.emit('elected', term.leader());
        return term;
      } catch (err) {
        await slot?.release().catch(() => {});
        if (signal.aborted) throw abortError(signal);
        if (err instanceof SharedStructError && err.code === 'SESSION_LOST') continue;
        throw err;
      }
    }
  }

  #depose(term: Term, reason: SharedStructError | undefined): void {
    if (this.#term !== term) return;
    this.#term = undefined;
    void term.letGo().catch(() => {});
    this.emit('deposed', { leader: term.leader(), reason });
  }

  /**
   * Stops leading, or withdraws a campaign that is still waiting: deletes this candidate's own
   * key (never another's) and resolves once the store answered. A candidate that resigned is
   * never elected by the campaign it resigned from. Idempotent.
   */
  resign(): Promise<void> {
    return holding(async () => {
      const campaign = this.#campaign;
      if (campaign) {
        campaign.withdraw.abort(new SharedStructError('ABORTED', `the candidate '${this.id}' resigned from election '${this.name}' before it was elected`));
        await campaign.promise.catch(() => {});
      }
      const term = this.#term;
      if (term) {
        this.#depose(term, undefined);
        await term.letGo().catch(() => {});
      }
    });
  }

  /** Same as {@link resign}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.resign();
  }

  /** The current leader as the store has it, or null. */
  leader(options: { signal?: AbortSignal } = {}): Promise<Leader | null> {
    return holding(async () => {
      const entries = await this.#backend.list(this.#parent, { signal: options.signal, consistent: true });
      for (const e of entries) {
        const leader = toLeader(e);
        if (leader) return leader;
      }
      return null;
    });
  }

  /**
   * The leader now and after every change (null while there is none), without repeats. Each
   * value is the leader at the time it was read: a term shorter than one watch notification
   * may be skipped (use `campaign`/`deposed` to act on your own leadership). It survives
   * disconnects and transient errors (it re-reads and goes on); it ends on `signal`, when the
   * iterator is returned, and fails only on an error retrying cannot fix (`UNAUTHORIZED`,
   * `CLOSED`). While its `next()` waits, the process stays alive.
   */
  observe(options: { signal?: AbortSignal } = {}): AsyncIterable<Leader | null> {
    const stop = new AbortController();
    const queue = new AsyncQueue<Leader | null>(() => stop.abort(), { holdsProcess: true });
    const signal = anySignal(options.signal, stop.signal);
    let last: string | undefined;
    const publish = (entries: Entry[]): void => {
      const head = entries.find((e) => toLeader(e) !== undefined);
      const key = head ? `${head.key}@${head.createRevision}` : '';
      if (key === last) return;
      last = key;
      queue.push(head ? toLeader(head)! : null);
    };
    follow(queue, signal, `observer of election '${this.name}'`, async (progress) => {
      const watch = this.#backend.watch({ prefix: this.#parent }, { signal });
      try {
        publish(await this.#backend.list(this.#parent, { signal }));
        progress();
        for await (const _ of watch) {
          publish(await this.#backend.list(this.#parent, { signal }));
          progress();
        }
      } finally {
        watch.close();
      }
    });
    return queue;
  }
}
