/**
 * `Inspector`: read-only views of what a namespace holds — structs, listeners, members, lock
 * queues, elections, a struct's past versions, the store's endpoints — for operators and the
 * `sharedstruct` CLI. It registers nothing and writes nothing.
 */
import type { Backend, EndpointStatus, Entry } from './backend.js';
import { decodeFramed, jsonCodec, type Codec } from './codec.js';
import { diffValues, type Change } from './diff.js';
import { SharedStructError, throwIfAborted } from './errors.js';
import { decodeRecord, toMember } from './group.js';
import { validateName } from './names.js';
import type { Member } from './struct.js';
import { holding } from './util/keepalive.js';

/** A struct as {@link Inspector.structs} lists it. */
export interface StructInfo {
  readonly name: string;
  /** Version of the stored value. */
  readonly version: number;
  /** Store revision of the stored value, decimal. */
  readonly revision: string;
  /** Size of the stored (encoded) value, bytes. */
  readonly sizeBytes: number;
  /** As `open({ layout })` names it: `value` (one payload key) or `fields` (a head and one key per top-level field). */
  readonly layout: 'value' | 'fields';
  /** How many instances have it open (listener registrations). */
  readonly listeners: number;
  /** Set when it is a durable server's state: its queue and dead letters. */
  readonly server?: { readonly pending: number; readonly dead: number } | undefined;
}

/** A contender of a lock queue or an election. */
export interface QueueEntry {
  readonly id: string;
  /** Fencing token (create revision of its key), decimal. */
  readonly token: string;
  readonly host?: string | undefined;
  readonly pid?: number | undefined;
  /** When it queued (`Date.now()` of its process); its age is the session's lower bound. */
  readonly since?: number | undefined;
  /** The ttl of the session the key lives on. */
  readonly ttlMs?: number | undefined;
  /** An election candidate's published data. */
  readonly data?: unknown;
  /** The key is bound to a session (it vanishes with it). */
  readonly ephemeral: boolean;
}

/** A lock as {@link Inspector.locks} lists it: the holder and the queue behind it, in order. */
export interface LockInfo {
  readonly name: string;
  /** `lock`: `client.lock(name)`; `write_lock`: the write lock of struct `name` (`updateLocked`). */
  readonly kind: 'lock' | 'write_lock';
  readonly holder: QueueEntry | undefined;
  readonly waiting: readonly QueueEntry[];
}

/** An election as {@link Inspector.elections} lists it. */
export interface ElectionInfo {
  readonly name: string;
  /** The leader (the first candidate), undefined when nobody campaigns. */
  readonly leader: QueueEntry | undefined;
  /** The candidates behind the leader, in order. */
  readonly candidates: readonly QueueEntry[];
}

/** One past version of a struct. */
export interface StructVersion {
  readonly version: number;
  readonly revision: string;
  /** The decoded value; undefined when it could not be decoded (see `error`). */
  readonly value: unknown;
  /** What this version changed from the one before (empty for version 1 and the oldest one shown). */
  readonly changes: readonly Change[];
  readonly error?: string | undefined;
}

/** What {@link Inspector.history} found. */
export interface StructHistory {
  readonly name: string;
  /** Newest first. */
  readonly versions: readonly StructVersion[];
  /** Set when older versions were compacted away: the oldest version shown, decimal revision, whose predecessors are gone. */
  readonly compactedBefore?: string | undefined;
}

/** The client's own session, as {@link Inspector.session} reports it. */
export interface SessionInfo {
  readonly id: string;
  readonly state: string;
  readonly epoch: number;
  /** The ttl the server granted (ZooKeeper negotiates it within its min/max session timeout). */
  readonly ttlMs: number;
  /** When the server last answered this session (`Date.now()`). */
  readonly lastContactAt: number;
}

/** The layout segment a struct's keys use after its name (see lib/names.ts). */
const LAYOUT = new Set(['payload', 'listeners', 'write_lock', 'queue', 'claims', 'dead', 'replies', 'fields']);

function byKey(a: Entry, b: Entry): number {
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

function byToken(a: Entry, b: Entry): number {
  return a.createRevision < b.createRevision ? -1 : a.createRevision > b.createRevision ? 1 : byKey(a, b);
}

function parent(key: string): string {
  return key.slice(0, key.lastIndexOf('/'));
}

/** A lock or election record as a {@link QueueEntry}; undefined when it is not one. */
function queueEntry(entry: Entry): QueueEntry | undefined {
  const r = decodeRecord(entry);
  if (typeof r?.id !== 'string') return undefined;
  return Object.freeze({
    id: r.id,
    token: entry.createRevision.toString(),
    host: typeof r.host === 'string' ? r.host : undefined,
    pid: typeof r.pid === 'number' ? r.pid : undefined,
    since: typeof r.since === 'number' ? r.since : undefined,
    ttlMs: typeof r.ttlMs === 'number' ? r.ttlMs : undefined,
    ...('data' in r && { data: r.data }),
    ephemeral: entry.ephemeral,
  });
}

/** The queues under `root` (at any depth), by the key of their parent, each in token order. */
function queues(entries: readonly Entry[]): Map<string, Entry[]> {
  const out = new Map<string, Entry[]>();
  for (const e of entries) {
    if (e.value.byteLength === 0) continue; // a ZooKeeper parent znode, not a contender
    const p = parent(e.key);
    let list = out.get(p);
    if (!list) out.set(p, (list = []));
    list.push(e);
  }
  for (const list of out.values()) list.sort(byToken);
  return out;
}

/**
 * Read-only inspection of a client's namespace (`client.inspect`). Every method reads the store
 * (nothing is cached) and neither registers nor writes anything, so it is safe against a
 * production namespace. Listing methods read the whole namespace (or its `_locks` /
 * `_elections` part) in one scan: on etcd one range, on ZooKeeper one listing per znode.
 *
 * @example
 * ```ts
 * for (const s of await client.inspect.structs()) console.log(s.name, s.version, s.listeners);
 * for (const l of await client.inspect.locks()) console.log(l.name, l.holder?.id, l.waiting.length);
 * ```
 */
export class Inspector {
  readonly #backend: Backend;
  readonly #namespace: string;

  /** @internal Use `client.inspect`. */
  constructor(backend: Backend, namespace: string) {
    this.#backend = backend;
    this.#namespace = namespace;
  }

  /**
   * The structs of the namespace (names starting with `prefix` when given), by name. Nodes this
   * identity may not read (a ZooKeeper ACL that denies READ) reject `UNAUTHORIZED`, unless
   * `onUnreadable` is given: then each is passed to it (its store key) and left out.
   */
  structs(options: { prefix?: string; signal?: AbortSignal; onUnreadable?: (key: string) => void } = {}): Promise<StructInfo[]> {
    return holding(async () => {
      throwIfAborted(options.signal);
      const head = `${this.#namespace}/`;
      const found = new Map<string, { payload?: Entry; fields: Entry[]; listeners: number; queue: number; dead: number; server: boolean }>();
      // Only the folder the prefix names is walked (a prefix 'team/con' walks '<namespace>/team').
      const folder = options.prefix?.slice(0, Math.max(0, options.prefix.lastIndexOf('/'))) ?? '';
      const root = folder === '' ? this.#namespace : `${this.#namespace}/${folder}`;
      for (const e of await this.#backend.scan(root, { signal: options.signal, consistent: true, ...(options.onUnreadable && { onUnreadable: options.onUnreadable }) })) {
        const segments = e.key.slice(head.length).split('/');
        if (segments[0]!.startsWith('_')) continue; // _locks, _elections, _groups
        const at = segments.findIndex((s, i) => i > 0 && LAYOUT.has(s));
        if (at < 0) continue;
        const name = segments.slice(0, at).join('/');
        let s = found.get(name);
        if (!s) found.set(name, (s = { fields: [], listeners: 0, queue: 0, dead: 0, server: false }));
        const direct = segments.length === at + 2;
        switch (segments[at]) {
          case 'payload':
            if (segments.length === at + 1) s.payload = e;
            break;
          case 'fields':
            if (direct) s.fields.push(e);
            break;
          case 'listeners':
            if (direct) s.listeners += 1;
            break;
          case 'queue':
            s.server = true;
            if (direct) s.queue += 1;
            break;
          case 'dead':
            s.server = true;
            if (direct) s.dead += 1;
            break;
        }
      }
      const out: StructInfo[] = [];
      for (const [name, s] of found) {
        if (options.prefix !== undefined && !name.startsWith(options.prefix)) continue;
        const main = s.payload ?? s.fields.sort(byToken)[0];
        if (!main) continue;
        const latest = [s.payload, ...s.fields].reduce<Entry | undefined>((a, b) => (b && (!a || b.revision > a.revision) ? b : a), undefined)!;
        out.push(
          Object.freeze({
            name,
            // The head's version is the struct's, in either layout.
            version: s.payload ? s.payload.version : s.fields.reduce((n, f) => n + f.version, 0),
            revision: latest.revision.toString(),
            sizeBytes: (s.payload?.value.byteLength ?? 0) + s.fields.reduce((n, f) => n + f.value.byteLength, 0),
            layout: s.fields.length > 0 ? 'fields' : 'value',
            listeners: s.listeners,
            ...(s.server && { server: Object.freeze({ pending: s.queue, dead: s.dead }) }),
          }),
        );
      }
      return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    });
  }

  /** The instances that have struct `name` open, without opening it. */
  listeners(name: string, options: { signal?: AbortSignal } = {}): Promise<Member[]> {
    validateName(name, 'struct name');
    return this.#members(`${this.#namespace}/${name}/listeners`, options.signal);
  }

  /** The members of group `group`, without joining it. */
  members(group: string, options: { signal?: AbortSignal } = {}): Promise<Member[]> {
    validateName(group, 'group name');
    return this.#members(`${this.#namespace}/_groups/${group}`, options.signal);
  }

  /**
   * The locks with a holder or a queue: `client.lock()` locks and the write locks of structs
   * (`updateLocked`), by name; only `name` when given (`onUnreadable` as for {@link Inspector.structs}).
   */
  locks(options: { name?: string; signal?: AbortSignal; onUnreadable?: (key: string) => void } = {}): Promise<LockInfo[]> {
    return holding(async () => {
      if (options.name !== undefined) validateName(options.name, 'lock name');
      const head = `${this.#namespace}/`;
      const locksRoot = `${this.#namespace}/_locks`;
      const out: LockInfo[] = [];
      for (const [p, list] of queues(await this.#backend.scan(this.#namespace, { signal: options.signal, consistent: true, ...(options.onUnreadable && { onUnreadable: options.onUnreadable }) }))) {
        let name: string;
        let kind: LockInfo['kind'];
        if (p.startsWith(`${locksRoot}/`)) {
          name = p.slice(locksRoot.length + 1);
          kind = 'lock';
        } else if (p.endsWith('/write_lock') && !p.slice(head.length).startsWith('_')) {
          name = p.slice(head.length, -'/write_lock'.length);
          kind = 'write_lock';
        } else continue;
        if (options.name !== undefined && name !== options.name) continue;
        const contenders = list.flatMap((e) => queueEntry(e) ?? []);
        out.push(Object.freeze({ name, kind, holder: contenders[0], waiting: Object.freeze(contenders.slice(1)) }));
      }
      return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.kind < b.kind ? -1 : 1));
    });
  }

  /** The elections with candidates: the leader and the queue behind it, by name (`onUnreadable` as for {@link Inspector.structs}). */
  elections(options: { signal?: AbortSignal; onUnreadable?: (key: string) => void } = {}): Promise<ElectionInfo[]> {
    return holding(async () => {
      const root = `${this.#namespace}/_elections`;
      const out: ElectionInfo[] = [];
      for (const [p, list] of queues(await this.#backend.scan(root, { signal: options.signal, consistent: true, ...(options.onUnreadable && { onUnreadable: options.onUnreadable }) }))) {
        if (!p.startsWith(`${root}/`)) continue;
        const candidates = list.flatMap((e) => queueEntry(e) ?? []);
        out.push(Object.freeze({ name: p.slice(root.length + 1), leader: candidates[0], candidates: Object.freeze(candidates.slice(1)) }));
      }
      return out.sort((a, b) => (a.name < b.name ? -1 : 1));
    });
  }

  /**
   * The past versions of struct `name`, newest first, each with what it changed. etcd keeps them
   * until compaction (`compactedBefore` says where they stop); ZooKeeper keeps none and rejects
   * `UNSUPPORTED`. `codec`: the struct's codec, when it is not JSON.
   */
  history(name: string, options: { limit?: number; codec?: Codec; signal?: AbortSignal } = {}): Promise<StructHistory> {
    return holding(async () => {
      validateName(name, 'struct name');
      const limit = options.limit ?? 10;
      if (!Number.isInteger(limit) || limit < 1) throw new SharedStructError('INVALID_ARGUMENT', `option 'limit' must be an integer >= 1, got ${String(limit)}`);
      const codec = options.codec ?? jsonCodec;
      // One more than asked: the oldest shown gets its diff from the one before it.
      // A store that keeps no past values (ZooKeeper) rejects UNSUPPORTED saying why.
      const found = await this.#backend.history(`${this.#namespace}/${name}/payload`, { limit: limit + 1, signal: options.signal });
      if (found.entries.length === 0) {
        throw new SharedStructError('NOT_FOUND', `struct '${name}' does not exist in namespace '${this.#namespace}'`);
      }
      const decoded = found.entries.map((e) => {
        try {
          return { entry: e, value: decodeFramed(codec, e.value) };
        } catch (err) {
          return { entry: e, value: undefined, error: `not decodable with the ${codec.name} codec: ${err instanceof Error ? err.message : String(err)}` };
        }
      });
      const versions = decoded.slice(0, limit).map((d, i) => {
        const before = decoded[i + 1];
        const changes = before && before.entry.version === d.entry.version - 1 && d.error === undefined && before.error === undefined ? diffValues(before.value, d.value) : [];
        return Object.freeze({ version: d.entry.version, revision: d.entry.revision.toString(), value: d.value, changes: Object.freeze(changes), ...(d.error && { error: d.error }) });
      });
      const more = decoded.length > limit;
      return Object.freeze({
        name,
        versions: Object.freeze(versions),
        ...(!more && found.compactedBefore !== undefined && { compactedBefore: found.compactedBefore.toString() }),
      });
    });
  }

  /** Probes every endpoint of the store: reachable, server version, role, round trip, clock. */
  endpoints(options: { signal?: AbortSignal } = {}): Promise<EndpointStatus[]> {
    return holding(() => this.#backend.endpoints(options));
  }

  /** This client's session: id, state, the ttl the server granted, when it last answered. */
  session(): SessionInfo {
    const s = this.#backend.session;
    return Object.freeze({ id: s.id, state: s.state, epoch: s.epoch, ttlMs: s.ttlMs, lastContactAt: s.lastContactAt });
  }

  #members(prefix: string, signal: AbortSignal | undefined): Promise<Member[]> {
    return holding(async () => {
      const entries = await this.#backend.list(prefix, { signal, consistent: true });
      return entries.flatMap((e) => toMember(e, prefix) ?? []);
    });
  }
}
