/** Membership: ephemeral registrations under `_groups/<group>/<id>`, with join / leave events. */
import type { Backend, Entry } from './backend.js';
import { jsonCodec } from './codec.js';
import type { Member } from './struct.js';
import { AsyncQueue } from './util/async-queue.js';
import { follow } from './util/follow.js';
import { holding } from './util/keepalive.js';
import type { Logger } from './backend.js';

/** A membership change. */
export interface MemberChange {
  readonly type: 'join' | 'leave';
  readonly member: Member;
}

/** A registration, lock or election record: the JSON object a key holds, undefined when it holds none. */
export function decodeRecord(entry: Entry): Record<string, unknown> | undefined {
  let record: unknown;
  try {
    record = jsonCodec.decode(entry.value);
  } catch {
    return undefined;
  }
  if (typeof record !== 'object' || record === null || Array.isArray(record)) return undefined;
  return record as Record<string, unknown>;
}

/**
 * Decodes a registration record; undefined when it is not one. Group records are
 * `{ id, since, data }` and a member's data is that `data`; listener records are
 * `{ id, host, pid, since }` and a member's data is `{ host, pid }` (every field but id and since).
 */
export function toMember(entry: Entry, prefix: string): Member | undefined {
  const record = decodeRecord(entry);
  if (!record) return undefined;
  // `instance` tells one registration from another with the same id (see the client); not data.
  const { id, since, instance: _instance, ...rest } = record as { id?: unknown; since?: unknown; instance?: unknown } & Record<string, unknown>;
  return Object.freeze({
    id: typeof id === 'string' ? id : entry.key.slice(prefix.length + 1),
    data: 'data' in rest ? rest.data : Object.freeze(rest),
    since: typeof since === 'number' ? since : 0,
  });
}

/**
 * A membership of `client.join()`. The registration lives on the client's session and is
 * re-created after a lost session. `changes()` yields join / leave without duplicates.
 *
 * @example
 * ```ts
 * await using group = await client.join('workers', { id: 'w1', data: { zone: 'eu' } });
 * for await (const change of group.changes()) console.log(change.type, change.member.id);
 * ```
 */
export class Group implements AsyncDisposable {
  readonly name: string;
  /** This member's id. */
  readonly id: string;
  readonly #backend: Backend;
  readonly #prefix: string;
  readonly #leave: () => Promise<void>;
  readonly #logger: Logger;
  #left = false;

  /** @internal Use `client.join()`. */
  constructor(backend: Backend, name: string, prefix: string, id: string, leave: () => Promise<void>, logger: Logger) {
    this.#backend = backend;
    this.name = name;
    this.#prefix = prefix;
    this.id = id;
    this.#leave = leave;
    this.#logger = logger;
  }

  /** The members the store has now, in joining order (records that cannot be decoded are skipped). */
  members(options: { signal?: AbortSignal } = {}): Promise<Member[]> {
    return holding(async () => {
      const entries = await this.#backend.list(this.#prefix, { signal: options.signal, consistent: true });
      return entries.map((e) => toMember(e, this.#prefix)).filter((m): m is Member => m !== undefined);
    });
  }

  /**
   * Join and leave events from now on (the current members first, as joins, with
   * `includeCurrent`). Each member joins once and leaves once per registration; a registration
   * re-created after a lost session is seen as a leave and a join only if the store saw the gap.
   * A record that cannot be decoded is skipped (with a warning), never yielded. The stream
   * survives disconnects and transient errors; while its `next()` waits, the process stays alive.
   */
  changes(options: { signal?: AbortSignal; includeCurrent?: boolean } = {}): AsyncIterable<MemberChange> {
    const stop = new AbortController();
    const queue = new AsyncQueue<MemberChange>(() => stop.abort(), { holdsProcess: true });
    const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
    const known = new Map<string, { member: Member; createRevision: bigint }>();
    const emit = (type: MemberChange['type'], member: Member): void => queue.push(Object.freeze({ type, member }));
    const join = (entry: Entry): void => {
      const prev = known.get(entry.key);
      if (prev && prev.createRevision === entry.createRevision) return;
      const member = toMember(entry, this.#prefix);
      if (!member) return this.#logger.warn(`skipping undecodable member record '${entry.key}'`);
      if (prev) emit('leave', prev.member);
      known.set(entry.key, { member, createRevision: entry.createRevision });
      emit('join', member);
    };
    const leave = (key: string): void => {
      const prev = known.get(key);
      if (!prev) return;
      known.delete(key);
      emit('leave', prev.member);
    };
    const reconcile = (entries: readonly Entry[]): void => {
      const present = new Set(entries.map((e) => e.key));
      for (const key of [...known.keys()]) if (!present.has(key)) leave(key);
      for (const e of entries) join(e);
    };
    let after: bigint | undefined;
    follow(queue, signal, `changes of group '${this.name}'`, async (progress) => {
      if (after === undefined) {
        const initial = await this.#backend.list(this.#prefix, { signal, consistent: true });
        after = initial.reduce((max, e) => (e.revision > max ? e.revision : max), 0n);
        if (options.includeCurrent) reconcile(initial);
        else {
          for (const e of initial) {
            const member = toMember(e, this.#prefix);
            if (member) known.set(e.key, { member, createRevision: e.createRevision });
          }
        }
      }
      const watch = this.#backend.watch({ prefix: this.#prefix }, { signal, ...(after > 0n && { afterRevision: after }) });
      try {
        progress();
        for await (const ev of watch) {
          progress();
          if (ev.type === 'put') join(ev.entry);
          else if (ev.type === 'delete') leave(ev.key);
          else if (ev.type === 'reset') reconcile(ev.entries);
          const r = ev.type === 'put' ? ev.entry.revision : ev.revision;
          if (r > after) after = r;
        }
      } finally {
        watch.close();
      }
    });
    return queue;
  }

  /** Removes this member's own registration (never another member's). Idempotent. */
  leave(): Promise<void> {
    if (this.#left) return Promise.resolve();
    this.#left = true;
    return holding(() => this.#leave());
  }

  /** Same as {@link leave}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.leave();
  }
}
