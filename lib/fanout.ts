/**
 * Fan-out of change events: every subscriber has its own bounded buffer. One that falls too far
 * behind has its backlog replaced by a single `resync` event (the net diff from what it last
 * took to the current value), so memory stays bounded and its fold stays exact.
 */
import { abortError } from './errors.js';
import { mayHaveEmptyKey } from './codec.js';
import { diffValues, type Change } from './diff.js';
import { AsyncQueue } from './util/async-queue.js';
import type { DeepReadonly } from './json.js';

/** Where an event came from. */
export type ChangeOrigin = 'local' | 'remote' | 'resync';

/** One committed change of a struct, as every subscriber receives it. */
export interface ChangeEvent<T> {
  /** The version this event brings the struct to. */
  readonly version: number;
  /** The version before it (0 for a struct's first value). */
  readonly previousVersion: number;
  /** The store revision of `version`, as a decimal string. */
  readonly revision: string;
  /**
   * `local`: this instance's own write. `remote`: another writer's. `resync`: the subscriber or
   * the cache lost continuity (fell behind, session lost, compaction, corrupt value skipped) and
   * this event carries the net change.
   */
  readonly origin: ChangeOrigin;
  /** True when versions between `previousVersion` and `version` were not seen one by one. */
  readonly coalesced: boolean;
  /** The value at `version`, deep-frozen. */
  readonly value: DeepReadonly<T>;
  /**
   * What changed from the value at `previousVersion`. Computed on first access and then kept
   * (one diff for every subscriber of the instance): a write that nobody inspects costs no diff.
   */
  readonly changes: readonly Change[];
}

/**
 * A frozen {@link ChangeEvent} whose `changes` is diffed from `before` to `fields.value` on first
 * access (`bytes`, the encoded value when known, tell it whether to look for empty keys), or
 * taken from `known(before)` when the writer knows the list cheaper (a local draft's patches; it
 * answers undefined when `before` is not the value it knows the changes from). `changes` is an own enumerable accessor, so spreading, `JSON.stringify` and
 * `structuredClone` see it like a plain property. Both values are deep-frozen, so the diff is the
 * same whenever it is taken.
 */
export function changeEvent<T>(fields: Omit<ChangeEvent<T>, 'changes'>, before: unknown, bytes?: Uint8Array, known?: (before: unknown) => readonly Change[] | undefined): ChangeEvent<T> {
  let memo: readonly Change[] | undefined;
  let base: unknown = before;
  // An object literal with its accessor: much cheaper than defineProperty on a copy.
  return Object.freeze({
    version: fields.version,
    previousVersion: fields.previousVersion,
    revision: fields.revision,
    origin: fields.origin,
    coalesced: fields.coalesced,
    value: fields.value,
    get changes(): readonly Change[] {
      if (!memo) {
        const cheap = known?.(base);
        memo = Object.freeze(cheap ? [...cheap] : diffValues(base, fields.value, { mayHaveEmptyKeys: bytes === undefined || mayHaveEmptyKey(bytes) }));
        base = undefined; // the old value is no longer needed
      }
      return memo;
    },
  });
}

/** A subscriber's bounded buffer. */
class Subscriber<T> {
  readonly queue: AsyncQueue<ChangeEvent<T>>;
  /** The state after the last event this subscriber took (the base of a resync). */
  base: { readonly version: number; readonly value: unknown };
  readonly max: number;

  constructor(base: { version: number; value: unknown }, max: number, onEnd: () => void) {
    this.base = base;
    this.max = max;
    this.queue = new AsyncQueue(onEnd, { holdsProcess: true });
  }

  /** Queues `event`; returns false when the buffer overflowed and became one resync event. */
  offer(event: ChangeEvent<T>): boolean {
    if (this.queue.length < this.max) {
      this.queue.push(event);
      return true;
    }
    // Replace the whole backlog by one net event from what the subscriber last took.
    this.queue.clear();
    this.queue.push(
      changeEvent(
        { version: event.version, previousVersion: this.base.version, revision: event.revision, origin: 'resync', coalesced: true, value: event.value },
        this.base.value,
      ),
    );
    return false;
  }
}

/** The set of subscribers of one struct instance. */
export class FanOut<T> {
  readonly #subscribers = new Set<Subscriber<T>>();
  readonly #onOverflow: () => void;

  /** `onOverflow` is told each time a subscriber's backlog is replaced by a resync event. */
  constructor(onOverflow: () => void = () => {}) {
    this.#onOverflow = onOverflow;
  }

  get size(): number {
    return this.#subscribers.size;
  }

  /** Hands `event` to every subscriber (the same frozen object: one diff for all). */
  publish(event: ChangeEvent<T>): void {
    for (const s of this.#subscribers) if (!s.offer(event)) this.#onOverflow();
  }

  /** Events queued and not yet taken by the fullest subscriber (0 without subscribers). */
  backlog(): number {
    let most = 0;
    for (const s of this.#subscribers) most = Math.max(most, s.queue.length);
    return most;
  }

  /**
   * A new subscription starting after `base`. `initial`, when given, is queued first. The
   * iterator ends on `signal`, on `return()`, or when {@link endAll} is called.
   */
  subscribe(
    base: { version: number; value: unknown },
    max: number,
    signal: AbortSignal | undefined,
    initial?: ChangeEvent<T>,
  ): AsyncIterable<ChangeEvent<T>> {
    const onAbort = (): void => sub.queue.fail(abortError(signal!));
    const sub: Subscriber<T> = new Subscriber(base, max, () => {
      this.#subscribers.delete(sub);
      signal?.removeEventListener('abort', onAbort);
    });
    if (signal?.aborted) {
      sub.queue.fail(abortError(signal));
    } else {
      this.#subscribers.add(sub);
      signal?.addEventListener('abort', onAbort, { once: true });
      if (initial) sub.queue.push(initial);
    }
    return {
      [Symbol.asyncIterator]: () => {
        const it = sub.queue[Symbol.asyncIterator]();
        return {
          next: async () => {
            const r = await it.next();
            if (!r.done) sub.base = { version: r.value.version, value: r.value.value };
            return r;
          },
          return: () => it.return!(),
        };
      },
    };
  }

  /** Ends every subscription (the struct was closed). */
  endAll(): void {
    for (const s of [...this.#subscribers]) s.queue.end();
  }
}
