/**
 * The cache of one struct instance as a pure state machine: what the store held when last heard,
 * how fresh that is, and the events each change owes. No I/O and no timers: the struct feeds it
 * (through its {@link LocalWrites} tracker, the one way in) and it answers through its sink.
 */
import type { Entry } from '../backend.js';
import type { Change } from '../diff.js';
import { SharedStructError } from '../errors.js';
import { changeEvent, type ChangeEvent, type ChangeOrigin } from '../fanout.js';
import type { DeepReadonly } from '../json.js';
import type { Cached, Prepared, StructValues } from './values.js';

/** Where the cache's news goes. */
export interface CacheSink<T> {
  /**
   * A committed version, cached; to every subscriber. The event object is made by `event()`,
   * only when someone receives it (a write nobody listens to builds none).
   */
  change(origin: ChangeOrigin, coalesced: boolean, event: () => ChangeEvent<T>): void;
  /** The struct was deleted at (or by) `revision`. */
  deleted(revision: bigint): void;
  /** A corrupt remote version was skipped. */
  error(err: SharedStructError): void;
}

/** What a delete is known by: a revision (watch), or the lives seen when its read was sent. */
export type DeleteMark = { readonly revision: bigint } | { readonly livesAtSend: number };

/**
 * Versions only move forward within a life; a life (the key from its creation to its delete)
 * only gives way to a newer one. Every rule that keeps events in order and exactly once is here:
 * - an entry at or below the cached version is an echo: it only confirms;
 * - an entry of an older life than the cached one, or of a life that already ended, is stale;
 * - a delete ends the cached life only if it is newer than that life (its revision is above the
 *   life's create revision, or, for a read that found nothing, no new life was seen since the
 *   read was sent);
 * - freshness is dated by when the request that brought the news was sent (`asOf`), never by
 *   when a watch event arrived (a late event must not make an old cache look fresh).
 */
export class StructCache<T> {
  readonly #values: StructValues<T>;
  readonly #sink: CacheSink<T>;
  #cached: Cached<T> | undefined;
  /** The last value before a delete: the base of the next life's first event. */
  #lastValue: T | undefined;
  /** Create revision of the newest life that has ended (-1: none): its entries are stale. */
  #endedLife = -1n;
  /** Lives seen so far: a read that found nothing applies only if no new life came since it was sent. */
  #lives = 0;
  /** The highest store revision seen (the revision a delete is reported at when it has none of its own). */
  #revision = 0n;
  #confirmedAt = 0;
  #closed = false;
  /**
   * The newest corrupt version of the cached life (reported once). Writes compare against it so
   * that writing heals the struct; the next good remote value is delivered as a `resync`.
   */
  #corrupt: { readonly version: number; readonly createRevision: bigint } | undefined;

  constructor(values: StructValues<T>, sink: CacheSink<T>) {
    this.#values = values;
    this.#sink = sink;
  }

  /** The cached version, or undefined after a delete. */
  get current(): Cached<T> | undefined {
    return this.#cached;
  }

  /** The value subscribers start from: the cached one, or the last one before a delete. */
  get baseValue(): T | undefined {
    return this.#cached ? this.#cached.value : this.#lastValue;
  }

  get confirmedAt(): number {
    return this.#confirmedAt;
  }

  get lives(): number {
    return this.#lives;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The version a write compares against: the cached one, or a newer corrupt one it overwrites. */
  writeBase(cache: Cached<T>): number {
    const corrupt = this.#corrupt;
    return corrupt && corrupt.createRevision === cache.createRevision ? Math.max(cache.version, corrupt.version) : cache.version;
  }

  /** The first value, read at open (no event). */
  init(entry: Entry, value: T, asOf: number): void {
    this.#lives += 1;
    this.#store(entry, value, entry.value);
    this.confirm(asOf);
  }

  /** Stops everything: nothing is applied or emitted any more. */
  close(): void {
    this.#closed = true;
  }

  /**
   * The cache was confirmed equal to the store as of `asOf`: when the request that brought the
   * news was sent. Undefined (a watch event) confirms nothing.
   */
  confirm(asOf: number | undefined): void {
    if (asOf !== undefined && asOf > this.#confirmedAt) this.#confirmedAt = asOf;
  }

  /** The store revision `revision` was seen (a watch's progress). */
  seen(revision: bigint): void {
    if (revision > this.#revision) this.#revision = revision;
  }

  /**
   * Applies what the store holds at `entry`. `mine` is this instance's own committed write (its
   * event is `local`); when it lands right on the cached version it was diffed against, its
   * checked value is used as it is, without a decode.
   */
  put(entry: Entry, origin: ChangeOrigin, asOf: number | undefined, mine?: Prepared<T>): void {
    if (this.#closed) return;
    this.seen(entry.revision);
    const cached = this.#cached;
    if (cached === undefined || entry.createRevision !== cached.createRevision) {
      // Neither the cached life nor one that ended may come back.
      if (entry.createRevision <= (cached?.createRevision ?? this.#endedLife)) return;
      if (cached) this.#end(cached); // deleted and created again while we were not looking
      this.#lives += 1;
    }
    const current = this.#cached;
    const corrupt = current && this.#corrupt?.createRevision === current.createRevision ? this.#corrupt : undefined;
    if (current && entry.version <= Math.max(current.version, corrupt?.version ?? 0)) {
      this.confirm(asOf);
      return;
    }
    let value: T;
    let bytes = entry.value;
    let known: ((before: unknown) => readonly Change[] | undefined) | undefined;
    if (mine && current && !corrupt && current.version === mine.base && entry.version === mine.base + 1) {
      value = mine.value;
      bytes = mine.bytes;
      known = mine.changes;
    } else {
      const decoded = this.#values.decodeStored(entry);
      if ('error' in decoded) {
        // Keep the last valid version; the next valid one arrives as a resync.
        this.#corrupt = { version: entry.version, createRevision: entry.createRevision };
        this.#sink.error(
          new SharedStructError('CORRUPT_REMOTE_VALUE', `${decoded.error.message}; keeping version ${current?.version ?? 0}`, { cause: decoded.error.cause }),
        );
        return;
      }
      value = decoded.value;
      known = decoded.known;
    }
    let eventOrigin: ChangeOrigin = origin;
    if (mine) eventOrigin = 'local';
    else if (!current || (corrupt && origin !== 'local')) eventOrigin = 'resync';
    const before = current ? current.value : this.#lastValue;
    const previousVersion = current ? current.version : 0;
    const coalesced = current ? entry.version !== current.version + 1 : entry.version !== 1;
    this.#corrupt = undefined;
    this.#store(entry, value, bytes);
    this.confirm(asOf);
    let event: ChangeEvent<T> | undefined;
    this.#sink.change(eventOrigin, coalesced, () =>
      (event ??= changeEvent<T>(
        { version: entry.version, previousVersion, revision: entry.revision.toString(), origin: eventOrigin, coalesced, value: value as DeepReadonly<T> },
        before,
        bytes,
        known,
      )),
    );
  }

  /** Applies a delete, if it is newer than the cached life (see {@link DeleteMark}). */
  delete(mark: DeleteMark, asOf: number | undefined): void {
    if (this.#closed) return;
    const cached = this.#cached;
    if ('revision' in mark) {
      this.seen(mark.revision);
      if (cached && mark.revision <= cached.createRevision) return; // an older life's delete
    } else if (mark.livesAtSend !== this.#lives) {
      return; // a new life was seen after the read that found nothing was sent
    }
    this.confirm(asOf);
    if (cached) this.#end(cached);
  }

  #end(cached: Cached<T>): void {
    this.#cached = undefined;
    this.#corrupt = undefined;
    this.#endedLife = cached.createRevision;
    this.#sink.deleted(this.#revision > cached.revision ? this.#revision : cached.revision);
  }

  #store(entry: Entry, value: T, bytes: Uint8Array): void {
    this.#cached = {
      value,
      bytes,
      version: entry.version,
      revision: entry.revision,
      createRevision: entry.createRevision,
      ephemeral: entry.ephemeral,
    };
    this.#lastValue = value;
  }
}
