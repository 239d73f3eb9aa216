/**
 * The in-process store behind `memory://`: the semantics of etcd and ZooKeeper (dense versions
 * from 1, a global revision, a replayable history that can be compacted, sessions owning
 * ephemeral keys) in one synchronous object. Backends talk to it; it never awaits.
 */
import type { Entry, TxnCompare, TxnOp, WatchTarget } from '../../lib/backend.js';

/** A committed change, kept in the history for watches that resume. */
export type HistoryRecord =
  | { readonly type: 'put'; readonly revision: bigint; readonly entry: Entry }
  | { readonly type: 'delete'; readonly revision: bigint; readonly key: string };

/** A store-level watcher: receives every committed record under its target. */
export interface StoreWatcher {
  readonly target: WatchTarget;
  deliver(record: HistoryRecord): void;
}

interface StoreSession {
  readonly id: string;
  readonly ephemerals: Set<string>;
  expired: boolean;
}

/** Whether `key` falls under a watch target. */
export function matchesTarget(target: WatchTarget, key: string): boolean {
  if ('key' in target) return key === target.key;
  const prefix = `${target.prefix}/`;
  return key.startsWith(prefix) && !key.slice(prefix.length).includes('/');
}

/** How far the history may grow past `historyLimit` before it is compacted back to it. */
const HISTORY_SLACK = 1_000;

/** One named store; every `memory://NAME` client of the process shares it. */
export class MemoryStore {
  readonly name: string;
  #revision = 0n;
  #compactedRevision = 0n;
  #sequence = 0;
  #nextSessionId = 1;
  readonly #entries = new Map<string, Entry>();
  readonly #history: HistoryRecord[] = [];
  /** Each key's entry as of the compacted revision (what etcd still answers for a range at it). */
  readonly #compactedState = new Map<string, Entry>();
  readonly #watchers = new Set<StoreWatcher>();
  readonly #sessions = new Map<string, StoreSession>();
  /**
   * Records older than this many are dropped automatically, as etcd's auto-compaction would: in
   * batches of {@link HISTORY_SLACK} once that many more have come, so a commit costs no array
   * shift of the whole history (one per commit made a small update 2.5× slower).
   */
  readonly historyLimit = 10_000;

  constructor(name: string) {
    this.name = name;
  }

  get revision(): bigint {
    return this.#revision;
  }

  get compactedRevision(): bigint {
    return this.#compactedRevision;
  }

  get(key: string): Entry | undefined {
    return this.#entries.get(key);
  }

  /** Direct children of `prefix`, ordered by create revision. */
  list(prefix: string): Entry[] {
    const target = { prefix };
    return [...this.#entries.values()]
      .filter((e) => matchesTarget(target, e.key))
      .sort((a, b) => (a.createRevision < b.createRevision ? -1 : a.createRevision > b.createRevision ? 1 : 0));
  }

  /** Every entry below `prefix` at any depth, ordered by key. */
  scan(prefix: string): Entry[] {
    const head = `${prefix}/`;
    return [...this.#entries.values()].filter((e) => e.key.startsWith(head)).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  /** Current entries under a watch target (what a `reset` carries). */
  snapshot(target: WatchTarget): Entry[] {
    if ('key' in target) {
      const e = this.#entries.get(target.key);
      return e ? [e] : [];
    }
    return this.list(target.prefix);
  }

  /** A key for a sequential create: ordered after every earlier one, like ZooKeeper's suffix. */
  sequentialKey(key: string): string {
    this.#sequence += 1;
    return `${key}${String(this.#sequence).padStart(10, '0')}`;
  }

  openSession(): string {
    const id = (this.#nextSessionId++).toString(16);
    this.#sessions.set(id, { id, ephemerals: new Set(), expired: false });
    return id;
  }

  isLive(sessionId: string): boolean {
    const s = this.#sessions.get(sessionId);
    return s !== undefined && !s.expired;
  }

  /** Ends a session: its ephemeral keys are deleted, as the server does on expiry or close. */
  endSession(sessionId: string): void {
    const session = this.#sessions.get(sessionId);
    if (!session || session.expired) return;
    session.expired = true;
    this.#sessions.delete(sessionId);
    for (const key of [...session.ephemerals]) this.#delete(key);
  }

  /**
   * Applies a transaction atomically; `undefined` when a compare fails. Single-key writes are
   * transactions of one op, so every write goes through one path.
   */
  commit(compare: readonly TxnCompare[], ops: readonly TxnOp[], sessionId: string): (Entry | undefined)[] | undefined {
    for (const c of compare) {
      const e = this.#entries.get(c.key);
      if (!e) return undefined;
      if ('version' in c && (e.version !== c.version || (c.createRevision !== undefined && e.createRevision !== c.createRevision))) return undefined;
    }
    for (const op of ops) {
      const e = this.#entries.get(op.key);
      if (op.op === 'create' && e) return undefined;
      if (op.op !== 'create' && !e) return undefined;
      if (op.op !== 'create' && op.expectedVersion !== undefined && e?.version !== op.expectedVersion) return undefined;
    }
    if (ops.some((op) => op.op === 'create' && op.ephemeral) && !this.isLive(sessionId)) return undefined;
    this.#revision += 1n;
    const revision = this.#revision;
    const results: (Entry | undefined)[] = [];
    for (const op of ops) {
      if (op.op === 'delete') {
        this.#delete(op.key, revision);
        results.push(undefined);
        continue;
      }
      const previous = this.#entries.get(op.key);
      const ephemeral = op.op === 'create' ? op.ephemeral === true : previous!.ephemeral;
      const entry: Entry = Object.freeze({
        key: op.key,
        value: op.value.slice(),
        version: previous ? previous.version + 1 : 1,
        revision,
        createRevision: previous ? previous.createRevision : revision,
        ephemeral,
      });
      this.#entries.set(op.key, entry);
      if (op.op === 'create' && ephemeral) this.#sessions.get(sessionId)!.ephemerals.add(op.key);
      this.#record({ type: 'put', revision, entry });
      results.push(entry);
    }
    return results;
  }

  #delete(key: string, atRevision?: bigint): void {
    if (!this.#entries.delete(key)) return;
    for (const s of this.#sessions.values()) s.ephemerals.delete(key);
    let revision = atRevision;
    if (revision === undefined) {
      this.#revision += 1n;
      revision = this.#revision;
    }
    this.#record({ type: 'delete', revision, key });
  }

  #record(record: HistoryRecord): void {
    this.#history.push(record);
    if (this.#history.length > this.historyLimit + HISTORY_SLACK) this.compact(this.#history[this.#history.length - this.historyLimit]!.revision - 1n);
    for (const w of [...this.#watchers]) {
      const key = record.type === 'put' ? record.entry.key : record.key;
      if (matchesTarget(w.target, key)) w.deliver(record);
    }
  }

  /** Records after `revision` for `target`, or `undefined` when compaction removed some of them. */
  historyAfter(target: WatchTarget, revision: bigint): HistoryRecord[] | undefined {
    if (revision < this.#compactedRevision) return undefined;
    return this.#history.filter((r) => r.revision > revision && matchesTarget(target, r.type === 'put' ? r.entry.key : r.key));
  }

  /**
   * `key`'s versions in its current life, newest first, at most `limit`, from the history (the
   * current entry is always there); `compactedBefore` when compaction removed older ones.
   */
  keyHistory(key: string, limit: number): { entries: Entry[]; compactedBefore?: bigint } {
    const current = this.#entries.get(key);
    if (!current) return { entries: [] };
    const entries = [current];
    for (let i = this.#history.length - 1; i >= 0 && entries.length < limit; i--) {
      const r = this.#history[i]!;
      if (r.type !== 'put' || r.entry.key !== key || r.revision >= entries[entries.length - 1]!.revision) continue;
      if (r.entry.createRevision !== current.createRevision) break;
      entries.push(r.entry);
    }
    // As etcd, the state at the compacted revision itself is still readable.
    const kept = this.#compactedState.get(key);
    const last = entries[entries.length - 1]!;
    if (entries.length < limit && kept && kept.createRevision === current.createRevision && kept.version === last.version - 1) entries.push(kept);
    const oldest = entries[entries.length - 1]!;
    return oldest.version > 1 && entries.length < limit ? { entries, compactedBefore: oldest.revision } : { entries };
  }

  /** Forgets history up to and including `revision` (default: all), like etcd's compaction. */
  compact(revision: bigint = this.#revision): void {
    if (revision <= this.#compactedRevision) return;
    this.#compactedRevision = revision;
    let drop = 0;
    for (; drop < this.#history.length && this.#history[drop]!.revision <= revision; drop++) {
      const r = this.#history[drop]!;
      if (r.type === 'put') this.#compactedState.set(r.entry.key, r.entry);
      else this.#compactedState.delete(r.key);
    }
    this.#history.splice(0, drop);
  }

  addWatcher(watcher: StoreWatcher): () => void {
    this.#watchers.add(watcher);
    return () => this.#watchers.delete(watcher);
  }
}

/**
 * The stores of this process by name. A registry is unavoidable here: `memory://NAME` means
 * "the same store for every client of this process that says NAME". It hangs off `globalThis`
 * under a registered symbol so that two loaded copies of this module (two copies of the package
 * in node_modules, or a loader that instantiates a module twice) still share one store.
 */
const REGISTRY = Symbol.for('sharedstruct.memoryStores');
const stores: Map<string, MemoryStore> = ((globalThis as Record<symbol, unknown>)[REGISTRY] ??= new Map()) as Map<string, MemoryStore>;

/** The store called `name` ('' is the default `memory://` store), created on first use. */
export function memoryStore(name: string): MemoryStore {
  let store = stores.get(name);
  if (!store) {
    store = new MemoryStore(name);
    stores.set(name, store);
  }
  return store;
}
