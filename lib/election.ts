/** Leader election on the lock queue: the head of `_elections/<name>` leads until it resigns or is lost. */
import type { Backend, Entry } from './backend.js';
import { jsonCodec } from './codec.js';
import { SharedStructError, abortError, throwIfAborted } from './errors.js';
import { enqueue, monitorLoss, waitForHead, type QueueEntry } from './queue.js';
import { AsyncQueue } from './util/async-queue.js';
import { follow } from './util/follow.js';
import { TypedEmitter } from './util/emitter.js';
import type { Logger } from './backend.js';

/** Who leads. */
export interface Leader {
  readonly id: string;
  readonly data: unknown;
  /** Fencing token of the leadership (create revision of the leader's key), decimal. */
  readonly token: string;
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

function toLeader(entry: Entry): Leader {
  const record = jsonCodec.decode(entry.value) as { id?: unknown; data?: unknown };
  return Object.freeze({ id: String(record.id), data: record.data, token: entry.createRevision.toString() });
}

/**
 * One candidate in an election. `campaign()` waits in FIFO order and resolves once elected; the
 * leader stays until `resign()` or until its session may be lost, when it is deposed locally
 * first (see docs/LOCKS.md for the margin).
 *
 * @example
 * ```ts
 * const election = client.election('workers', { id: 'w1' });
 * election.on('deposed', () => stopWork());
 * await election.campaign();
 * startWork();
 * ```
 */
export class Election extends TypedEmitter<ElectionEvents> {
  readonly name: string;
  readonly id: string;
  readonly #backend: Backend;
  readonly #parent: string;
  readonly #data: unknown;
  #held: { entry: QueueEntry; leader: Leader; stop: () => void; check: () => boolean } | undefined;
  #campaigning: Promise<Leader> | undefined;

  /** @internal Use `client.election()`. */
  constructor(backend: Backend, name: string, parent: string, id: string, data: unknown, logger: Logger) {
    super((err) => logger.error(`unhandled error in election '${name}'`, { err }));
    this.#backend = backend;
    this.name = name;
    this.#parent = parent;
    this.id = id;
    this.#data = data;
  }

  /** True while this candidate leads; checks the loss deadline on the spot, as `Lock.held` does. */
  get isLeader(): boolean {
    return this.#held?.check() ?? false;
  }

  /**
   * Joins the election and resolves once this candidate is the leader. Rejects `ABORTED` when
   * `signal` fires (the candidacy is withdrawn). Calling it while campaigning or leading returns
   * the same leadership.
   */
  campaign(options: { signal?: AbortSignal } = {}): Promise<Leader> {
    if (this.#held) return Promise.resolve(this.#held.leader);
    this.#campaigning ??= this.#campaign(options.signal).finally(() => (this.#campaigning = undefined));
    return this.#campaigning;
  }

  async #campaign(signal: AbortSignal | undefined): Promise<Leader> {
    throwIfAborted(signal);
    const wait = signal ?? new AbortController().signal;
    for (;;) {
      const me = await enqueue(this.#backend, this.#parent, { id: this.id, data: this.#data }, wait);
      try {
        await waitForHead(this.#backend, this.#parent, me, wait);
        const monitor = monitorLoss(this.#backend, me, `leadership of '${this.name}'`);
        const leader: Leader = Object.freeze({ id: this.id, data: this.#data, token: me.token.toString() });
        this.#held = { entry: me, leader, stop: () => monitor.stop(), check: () => monitor.check() };
        monitor.signal.addEventListener('abort', () => this.#depose(abortError(monitor.signal)), { once: true });
        if (monitor.signal.aborted) continue;
        this.emit('elected', leader);
        return leader;
      } catch (err) {
        await this.#backend.delete(me.key).catch(() => {});
        if (signal?.aborted) throw abortError(signal);
        if (err instanceof SharedStructError && err.code === 'SESSION_LOST') continue;
        throw err;
      }
    }
  }

  #depose(reason: SharedStructError | undefined): void {
    const held = this.#held;
    if (!held) return;
    this.#held = undefined;
    held.stop();
    this.emit('deposed', { leader: held.leader, reason });
  }

  /** Stops leading (or campaigning): deletes this candidate's own key. Idempotent. */
  async resign(): Promise<void> {
    const held = this.#held;
    this.#depose(undefined);
    if (held) await this.#backend.delete(held.entry.key).catch(() => {});
  }

  /** The current leader as the store has it, or null. */
  async leader(options: { signal?: AbortSignal } = {}): Promise<Leader | null> {
    const entries = await this.#backend.list(this.#parent, { signal: options.signal, consistent: true });
    return entries[0] ? toLeader(entries[0]) : null;
  }

  /**
   * The leader now and after every change (null while there is none), without repeats. Each
   * value is the leader at the time it was read: a term shorter than one watch notification
   * may be skipped (use `campaign`/`deposed` to act on your own leadership). Ends on `signal`,
   * or when the iterator is returned.
   */
  observe(options: { signal?: AbortSignal } = {}): AsyncIterable<Leader | null> {
    const stop = new AbortController();
    const queue = new AsyncQueue<Leader | null>(() => stop.abort());
    const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
    let last: string | undefined;
    const publish = (entries: Entry[]): void => {
      const head = entries[0];
      const key = head ? `${head.key}@${head.createRevision}` : '';
      if (key === last) return;
      last = key;
      queue.push(head ? toLeader(head) : null);
    };
    follow(queue, signal, async () => {
      const watch = this.#backend.watch({ prefix: this.#parent }, { signal });
      try {
        publish(await this.#backend.list(this.#parent, { signal }));
        for await (const _ of watch) publish(await this.#backend.list(this.#parent, { signal }));
      } finally {
        watch.close();
      }
    });
    return queue;
  }
}
