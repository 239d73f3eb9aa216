/**
 * One client of a fault-matrix run, playing its part of a workload: the same code runs in the
 * runner's process (`LocalParticipant`) or in a child process the runner can freeze with
 * SIGSTOP (`RemoteParticipant`, driven over JSON lines by participant-process.ts). Everything
 * it records is plain JSON stamped with the machine-wide clock of checks.ts, so the runner
 * checks local and remote records alike.
 */
import { fileURLToPath } from 'node:url';
import { applyChanges, connect, isSharedStructError, type Client, type Consumer, type DurableServer, type Election, type Logger, type SharedStruct } from '../../lib/index.js';
import { backendOf } from '../../lib/client.js';
import { connectWrapped } from '../../lib/connect.js';
import { faultyBackend, innermost, type SeededBug } from '../support/faulty-backend.js';
import type { Operation } from './linearizability.js';
import { now, type AckedWrite, type CachedRead, type FencedWrite, type Life, type LifeEvent, type NotFound, type QueueSend } from './checks.js';
import { sleep } from '../support/process.js';
import { startAgent, type Agent, type AgentEvent } from '../support/agents.js';

export type WorkloadName = 'register' | 'counter' | 'watch' | 'lock' | 'election' | 'recreate' | 'queue';

/** How a participant connects. */
export interface ParticipantConfig {
  readonly index: number;
  /** The store's URL through this participant's own proxies. */
  readonly url: string;
  readonly namespace: string;
  readonly sessionTtlMs: number;
  readonly requestTimeoutMs: number;
  /** The seeded bug this participant's client runs with (every backend it makes is wrapped). */
  readonly seeded?: SeededBug | undefined;
}

/** What a participant does in one run. */
export interface SetupSpec {
  readonly workload: WorkloadName;
  /** Base name of the run's structs. */
  readonly name: string;
  /** register: how many structs (operations spread over them). */
  readonly structs?: number;
  /** watch: writers write, readers read their cache. recreate: the deleter deletes and re-creates, the others subscribe, read and write. */
  /** queue: consumers serve, producers cast, the caller calls. */
  readonly role?: 'writer' | 'reader' | 'deleter' | 'consumer' | 'producer' | 'caller';
  /** watch: the struct's `maxStalenessMs` and `refreshIntervalMs`. */
  readonly maxStalenessMs?: number;
  readonly refreshIntervalMs?: number;
  /** Pause between operations. */
  readonly paceMs: number;
  /** register: at most this many operations (keeps histories checkable). */
  readonly maxOps?: number;
  /** lock, election: an ordinary hold (a term) lasts a uniform random time in this range. */
  readonly holdMs?: readonly [number, number];
  /** recreate: each life lasts a uniform random time in this range before the deleter deletes it. */
  readonly lifeMs?: readonly [number, number];
  /** The loop ends by then (a {@link now} time) even if nobody calls `stop`. */
  readonly hardStopAt: number;
}

/** A register operation as recorded: the checker's {@link Operation} with its index `k`, and no `next` (the runner re-attaches it to updates). */
export type RecordedOp = { readonly k: number } & WithoutNext<Operation>;
type WithoutNext<O> = O extends { readonly kind: 'update' } ? Omit<O, 'next'> : O;

/** One `updateLocked` call that got the lock (see checks.ts `Hold`). */
export interface HoldRecord {
  client: number;
  token: string;
  acquiredAt: number;
  lastActAt: number;
  learnedAt?: number;
  learnedBy?: 'signal' | 'held';
  fnEndAt?: number;
  /** Why: the reason `lock.signal` gave. */
  why?: string;
  settledAt?: number;
  outcome?: string;
  long: boolean;
}

/** One term of the election workload (see checks.ts `Term`). */
export interface TermRecord {
  client: number;
  token: string;
  electedAt: number;
  lastActAt: number;
  endedAt?: number;
  learnedAt?: number;
  learnedBy?: 'signal' | 'held';
  /** What `held` said at once when `campaign()` resolved: a resolved leadership must be held. */
  heldAtOnce: boolean;
  long: boolean;
}

/** Everything a participant recorded in one run. */
export interface RunRecord {
  readonly index: number;
  ok: number;
  failed: number;
  unknown: number;
  /** Completion times of successful operations (recovery times come from these). */
  readonly okTimes: number[];
  /** Problems seen on the spot: a subscriber's version repeated or going back, read() going back. */
  readonly anomalies: string[];
  /** Errors no workload expects: each one fails the run. */
  readonly unexpected: string[];
  /** Expected failures and unknown outcomes, by error code. */
  readonly codes: Record<string, number>;
  /** Diagnostics (not violations): e.g. the lock queue when a wait timed out. */
  readonly notes: string[];
  readonly ops: RecordedOp[];
  readonly writes: AckedWrite[];
  readonly reads: CachedRead[];
  staleReadErrors: number;
  readonly holds: HoldRecord[];
  /** updateLocked rejected CONFLICT: someone wrote the struct while this holder held its lock. */
  lockConflicts: number;
  /** lock: every delete of a lock key this client sent (its releases) and what it answered. */
  readonly lockKeyDeletes: { key: string; at: number; result: 'deleted' | 'absent' | 'error' }[];
  /** election: every term this participant led. */
  readonly terms: TermRecord[];
  /** recreate, the deleter: every life it created. */
  readonly lives: Life[];
  /** recreate, the others: what the instance emitted (`change`, `deleted`), in order. */
  readonly lifeEvents: LifeEvent[];
  /** recreate, the others: what their `changes()` iterator yielded, in order. */
  readonly iterEvents: LifeEvent[];
  /** recreate: writes that rejected NOT_FOUND, with the life the cache held at the call. */
  readonly notFounds: NotFound[];
  /** queue, producers and the caller: every message sent, in order, with what it answered. */
  readonly sends: QueueSend[];
}

/** A participant's check after healing (watch, recreate): its cache and its subscriber's fold against the final value. */
export interface FinishRecord {
  readonly version: number;
  readonly cacheEqual: boolean;
  readonly foldEqual: boolean;
  /** queue, consumers: the tags their `ctx.after` effects ran for, in order. */
  readonly effects?: readonly string[];
}

/** What the runner needs to end a participant's session on the server. */
export type SessionInfo =
  | { readonly kind: 'etcd'; readonly leaseId: string }
  | { readonly kind: 'zookeeper'; readonly sessionId: string; readonly password: string; readonly timeoutMs: number }
  | { readonly kind: 'other' };

/** The participant's interface, the same in and out of process. */
export interface ParticipantHandle {
  readonly index: number;
  /** PID of the process it runs in. */
  readonly pid: number;
  readonly remote: boolean;
  sessionInfo(): Promise<SessionInfo>;
  setup(spec: SetupSpec): Promise<void>;
  /** Runs the workload until `stop` (or the hard stop); resolves the record. */
  run(): Promise<RunRecord>;
  /** Ends the loop at `at` (a {@link now} time). */
  stop(at: number): Promise<void>;
  /** lock, election: the next hold (term) lasts `holdMs` (or until lost); resolves once it started (false after `timeoutMs`). */
  holdLong(holdMs: number, timeoutMs: number): Promise<boolean>;
  /** Resolves once the client's session was confirmed by the server again (an answer), false after `timeoutMs`. */
  nextContact(timeoutMs: number): Promise<boolean>;
  /** watch, recreate: waits for `final`'s version, then compares the cache and the fold. */
  finish(final: { version: number; value: unknown }): Promise<FinishRecord>;
  close(): Promise<void>;
  /** Remote only: SIGSTOP / SIGCONT by PID. */
  pause?(): Promise<void>;
  resume?(): void;
}

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {} };
const UNKNOWN = ['TIMEOUT', 'CONNECTION', 'SESSION_LOST'] as const;
type Reg = { n: number };
type Watched = { n: number; by: number };
type Fenced = { log: FencedWrite[] };
/**
 * recreate: `life` is set at creation and never written; `n` is 0 at creation, +1 per write;
 * `log` gets the writer's index appended by every write (each element is changed once, so an
 * event left out of a fold stays out: a value overwritten by every write would heal it).
 */
type Lived = { life: number; n: number; by: number; log: number[] };
/** queue: every handled message appends its tag to `applied` and adds 1 to `n`. */
type QState = { applied: string[]; n: number };
type QMsg = { tag: string };

const errorText = (err: unknown): string => (isSharedStructError(err) ? `${err.code}: ${err.message}` : String((err as Error)?.stack ?? err));

/** Retries an open or a read until the store answers (after a fault), bounded. */
export async function settle<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (attempt >= 60 || !isSharedStructError(err, ...UNKNOWN)) throw err;
      await sleep(250);
    }
  }
}

/** The participant itself: one client, one workload part. */
export class Participant {
  readonly index: number;
  readonly client: Client;
  #spec: SetupSpec | undefined;
  #until = Number.POSITIVE_INFINITY;
  #structs: SharedStruct<Reg>[] = [];
  #watched: SharedStruct<Watched> | SharedStruct<Lived> | undefined;
  #election: Election | undefined;
  /** recreate: the life the instance's cache holds (undefined after a deleted). */
  #life: number | undefined;
  readonly #closing = new AbortController();
  #fenced: SharedStruct<Fenced> | undefined;
  #folded: unknown;
  #lastEvent = 0;
  #longHold: { ms: number; started: () => void } | undefined;
  #server: DurableServer<QState, QMsg, number> | undefined;
  #consumer: Consumer | undefined;
  /** queue, consumers: the tags `ctx.after` ran for. */
  readonly #effects: string[] = [];
  readonly #record: RunRecord;

  private constructor(index: number, client: Client) {
    this.index = index;
    this.client = client;
    this.#record = {
      index,
      ok: 0,
      failed: 0,
      unknown: 0,
      okTimes: [],
      anomalies: [],
      unexpected: [],
      codes: {},
      notes: [],
      ops: [],
      writes: [],
      reads: [],
      staleReadErrors: 0,
      holds: [],
      lockConflicts: 0,
      lockKeyDeletes: [],
      terms: [],
      lives: [],
      lifeEvents: [],
      iterEvents: [],
      notFounds: [],
      sends: [],
    };
  }

  static async connect(config: ParticipantConfig): Promise<Participant> {
    const options = { namespace: config.namespace, sessionTtlMs: config.sessionTtlMs, requestTimeoutMs: config.requestTimeoutMs, logger: quiet };
    const bug = config.seeded;
    const client = await settle(() => (bug === undefined ? connect(config.url, options) : connectWrapped(config.url, options, faultyBackend(bug))));
    return new Participant(config.index, client);
  }

  sessionInfo(): SessionInfo {
    // The adapter's own fields, under any seeded bug's wrapper.
    const backend = innermost(backendOf(this.client)) as unknown as {
      kind: string;
      leaseId?: string;
      sessionCredentials?: () => { sessionId: Buffer; password: Buffer; timeoutMs: number };
    };
    if (backend.kind === 'etcd' && backend.leaseId !== undefined) return { kind: 'etcd', leaseId: backend.leaseId };
    if (backend.kind === 'zookeeper' && backend.sessionCredentials) {
      const c = backend.sessionCredentials();
      return { kind: 'zookeeper', sessionId: c.sessionId.toString('hex'), password: c.password.toString('hex'), timeoutMs: c.timeoutMs };
    }
    return { kind: 'other' };
  }

  async setup(spec: SetupSpec): Promise<void> {
    this.#spec = spec;
    this.#until = spec.hardStopAt;
    // The observer times this client's session ends by this key (it goes only with the session).
    await settle(() => this.client.join('sessions', { id: `p${this.index}` }));
    switch (spec.workload) {
      case 'register':
      case 'counter':
        for (let k = 0; k < (spec.structs ?? 1); k++) {
          const name = spec.workload === 'counter' ? spec.name : `${spec.name}-${k}`;
          this.#structs.push(await settle(() => this.client.open<Reg>(name, { initial: { n: 0 } })));
        }
        return;
      case 'watch': {
        const s = await settle(() =>
          this.client.open<Watched>(spec.name, {
            initial: { n: 0, by: -1 },
            ...(spec.maxStalenessMs !== undefined && { maxStalenessMs: spec.maxStalenessMs }),
            ...(spec.refreshIntervalMs !== undefined && { refreshIntervalMs: spec.refreshIntervalMs }),
          }),
        );
        this.#watched = s;
        this.#folded = s.readDirty();
        this.#lastEvent = s.stat().version;
        s.on('change', (ev) => {
          if (ev.version <= this.#lastEvent) this.#record.anomalies.push(`subscriber of p${this.index}: version ${ev.version} after ${this.#lastEvent}`);
          this.#lastEvent = ev.version;
          this.#folded = applyChanges(this.#folded, ev.changes);
        });
        return;
      }
      case 'lock': {
        this.#fenced = await settle(() => this.client.open<Fenced>(spec.name, { initial: { log: [] } }));
        // Which lock keys this holder deleted itself: a key its release found there was not taken
        // by a session end. Recorded at the client seam; the library is not changed.
        const backend = backendOf(this.client);
        const del = backend.delete.bind(backend);
        backend.delete = async (key, options) => {
          if (!key.includes('/write_lock/')) return del(key, options);
          try {
            const deleted = await del(key, options);
            this.#record.lockKeyDeletes.push({ key, at: now(), result: deleted ? 'deleted' : 'absent' });
            return deleted;
          } catch (err) {
            this.#record.lockKeyDeletes.push({ key, at: now(), result: 'error' });
            throw err;
          }
        };
        return;
      }
      case 'election':
        this.#election = this.client.election(spec.name, { id: `p${this.index}` });
        return;
      case 'queue': {
        const server = await settle(() =>
          this.client.server<QState, QMsg, number>(spec.name, {
            initial: { applied: [], n: 0 },
            handle: (draft, msg, ctx) => {
              draft.applied.push(msg.tag);
              draft.n += 1;
              ctx.reply(draft.n);
              // Effects run only on the consumer that committed: each is also its successful operation (recovery).
              ctx.after(() => {
                this.#effects.push(msg.tag);
                this.#ok();
              });
            },
          }),
        );
        // Transient errors of a consumer are its business; a handler failure or a buried message is not.
        server.on('error', (err) => {
          this.#record.codes[`server ${err.code}`] = (this.#record.codes[`server ${err.code}`] ?? 0) + 1;
          if (err.code === 'HANDLER_FAILED') this.#record.unexpected.push(`p${this.index}: server error ${errorText(err)}`);
        });
        server.on('dead', (d) => this.#record.unexpected.push(`p${this.index}: message ${d.id} buried: ${errorText(d.error)}`));
        this.#server = server;
        return;
      }
      case 'recreate': {
        const initial: Lived = { life: 1, n: 0, by: -1, log: [] };
        if (spec.role === 'deleter') {
          // Life 1 is created here (any participant may create it: the same initial value).
          const s = await settle(() => this.client.open<Lived>(spec.name, { initial }));
          this.#record.lives.push({ life: 1, createRevision: await this.#createRevision(spec.name) });
          this.#watched = s;
          return;
        }
        const s = await settle(() => this.client.open<Lived>(spec.name, { initial }));
        this.#watched = s;
        this.#folded = s.readDirty();
        this.#life = s.readDirty().life;
        const lifeOf = (v: unknown): number => (v as Lived).life;
        // What the instance emits, in its own order: the change and deleted events are emitted
        // synchronously as the cache moves.
        s.on('change', (ev) => {
          this.#life = lifeOf(ev.value);
          this.#record.lifeEvents.push({ kind: 'change', at: now(), life: lifeOf(ev.value), version: ev.version, previousVersion: ev.previousVersion, n: (ev.value as Lived).n });
        });
        s.on('deleted', (ev) => {
          this.#life = undefined;
          this.#record.lifeEvents.push({ kind: 'deleted', at: now(), revision: ev.revision });
        });
        // A subscriber as a user writes one: the changes() iterator, folded.
        const events = s.changes({ signal: this.#closing.signal });
        void (async () => {
          try {
            for await (const ev of events) {
              this.#lastEvent = ev.version;
              this.#record.iterEvents.push({ kind: 'change', at: now(), life: lifeOf(ev.value), version: ev.version, previousVersion: ev.previousVersion, n: (ev.value as Lived).n });
              this.#folded = applyChanges(this.#folded, ev.changes);
            }
          } catch (err) {
            if (!this.#closing.signal.aborted) this.#record.unexpected.push(`p${this.index} changes(): ${errorText(err)}`);
          }
        })();
        return;
      }
    }
  }

  /** recreate: the create revision of the struct's key as the store has it now. */
  async #createRevision(name: string): Promise<string> {
    const entry = await settle(() => backendOf(this.client).get(`${this.client.namespace}/${name}/payload`, { consistent: true }));
    if (!entry) throw new Error(`recreate: struct '${name}' is not there right after its creation`);
    return entry.createRevision.toString();
  }

  /** Resolves once the session's last contact moves (an answered request or keepalive), false after `timeoutMs`. */
  async nextContact(timeoutMs: number): Promise<boolean> {
    const session = backendOf(this.client).session;
    const before = session.lastContactAt;
    const deadline = now() + timeoutMs;
    while (now() < deadline) {
      if (session.lastContactAt > before) return true;
      await sleep(2);
    }
    return false;
  }

  stop(at: number): void {
    this.#until = Math.min(this.#until, at);
  }

  holdLong(holdMs: number, timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#longHold = undefined;
        resolve(false);
      }, timeoutMs);
      this.#longHold = {
        ms: holdMs,
        started: () => {
          clearTimeout(timer);
          resolve(true);
        },
      };
    });
  }

  async run(): Promise<RunRecord> {
    const spec = this.#spec;
    if (!spec) throw new Error('setup() first');
    switch (spec.workload) {
      case 'register':
        await this.#register(spec);
        break;
      case 'counter':
        await this.#counter(spec);
        break;
      case 'watch':
        await (spec.role === 'reader' ? this.#reader(spec) : this.#writer(spec));
        break;
      case 'lock':
        await this.#lock(spec);
        break;
      case 'election':
        await this.#elect(spec);
        break;
      case 'recreate':
        await (spec.role === 'deleter' ? this.#recreate(spec) : this.#lived(spec));
        break;
      case 'queue':
        await (spec.role === 'consumer' ? this.#serve() : this.#produce(spec));
        break;
    }
    return this.#record;
  }

  async finish(final: { version: number; value: unknown }): Promise<FinishRecord> {
    if (this.#server) {
      // queue, after the runner's drain: the consumer stops, its cache must hold the final state.
      await this.#consumer?.stop();
      const s = this.#server.state;
      const want = JSON.stringify(final.value);
      const deadline = now() + 15000;
      while (s.stat().version < final.version && now() < deadline) await sleep(50);
      return { version: s.stat().version, cacheEqual: JSON.stringify(s.readDirty()) === want, foldEqual: true, effects: [...this.#effects] };
    }
    const s = this.#watched;
    if (!s) throw new Error('finish() is for the watch workload');
    const deadline = now() + 15000;
    const want = JSON.stringify(final.value);
    // recreate: versions restart with each life, so the cache must also hold the final life.
    const life = (final.value as Partial<Lived>).life;
    const cached = (): string | undefined => (s.stat().state === 'open' ? JSON.stringify(s.readDirty()) : undefined);
    const behind = (): boolean =>
      s.stat().version < final.version || this.#lastEvent < final.version || (life !== undefined && (this.#life !== life || cached() !== want || JSON.stringify(this.#folded) !== want));
    while (behind() && now() < deadline) await sleep(50);
    return { version: s.stat().version, cacheEqual: cached() === want, foldEqual: JSON.stringify(this.#folded) === want };
  }

  close(): Promise<void> {
    this.#closing.abort();
    return this.client.close();
  }

  #ok(): void {
    this.#record.ok += 1;
    this.#record.okTimes.push(now());
  }

  /** Counts an error: unknown outcome, an expected failure, or unexpected (fails the run). */
  #fail(err: unknown, expected: readonly string[] = []): void {
    if (isSharedStructError(err)) this.#record.codes[err.code] = (this.#record.codes[err.code] ?? 0) + 1;
    if (isSharedStructError(err, ...UNKNOWN)) this.#record.unknown += 1;
    else if (expected.length > 0 && isSharedStructError(err) && expected.includes(err.code)) this.#record.failed += 1;
    else this.#record.unexpected.push(`p${this.index}: ${errorText(err)}`);
  }

  async #register(spec: SetupSpec): Promise<void> {
    const inc = (d: Reg): void => void (d.n += 1);
    const client = this.index;
    for (let i = 0; i < (spec.maxOps ?? 1_000_000) && now() < this.#until; i++) {
      // i * 5, not i * 3: with 3 structs, 3i would pin each client to one struct; and k - pick
      // (pick below is (client + i) % 3) runs through every value, so every struct sees every operation kind.
      const k = (client * 7 + i * 5) % this.#structs.length;
      const s = this.#structs[k]!;
      const pick = (client + i) % 3;
      const value = JSON.stringify({ n: -(client * 1000 + i) });
      const expectedVersion = s.stat().version;
      const call = now();
      try {
        if (pick === 0) {
          await s.readConsistent();
          // Value and version in one synchronous step: a pair that was current inside the call.
          this.#record.ops.push({ k, kind: 'read', client, call, ret: now(), output: { version: s.stat().version, value: JSON.stringify(s.readDirty()) } });
        } else if (pick === 1) {
          const r = await s.update(inc, { maxRetries: 1000 });
          this.#record.ops.push({ k, kind: 'update', client, call, ret: now(), output: { version: r.version, value: JSON.stringify(r.value) } });
        } else {
          try {
            const r = await s.compareAndSet(expectedVersion, JSON.parse(value) as Reg);
            this.#record.ops.push({ k, kind: 'cas', client, call, ret: now(), expectedVersion, value, output: { ok: true, version: r.version } });
          } catch (err) {
            if (!isSharedStructError(err, 'CONFLICT')) throw err;
            this.#record.ops.push({ k, kind: 'cas', client, call, ret: now(), expectedVersion, value, output: { ok: false } });
          }
        }
        this.#ok();
      } catch (err) {
        this.#fail(err, ['CONFLICT']);
        // The outcome is unknown: a write may have committed; a read constrains nothing.
        if (pick === 1) this.#record.ops.push({ k, kind: 'update', client, call });
        if (pick === 2) this.#record.ops.push({ k, kind: 'cas', client, call, expectedVersion, value });
        await sleep(50);
      }
      await sleep(spec.paceMs);
    }
  }

  async #counter(spec: SetupSpec): Promise<void> {
    const s = this.#structs[0]!;
    while (now() < this.#until) {
      try {
        await s.update((d) => void (d.n += 1), { maxRetries: 200 });
        this.#ok();
      } catch (err) {
        this.#fail(err, ['CONFLICT']);
        await sleep(50);
      }
      await sleep(spec.paceMs);
    }
  }

  async #writer(spec: SetupSpec): Promise<void> {
    const s = this.#watched!;
    while (now() < this.#until) {
      try {
        const r = await s.update((d) => {
          d.n += 1;
          d.by = this.index;
        }, { maxRetries: 200 });
        this.#record.writes.push({ version: r.version, at: now() });
        this.#ok();
      } catch (err) {
        this.#fail(err, ['CONFLICT']);
        await sleep(50);
      }
      await sleep(spec.paceMs);
    }
  }

  async #reader(spec: SetupSpec): Promise<void> {
    const s = this.#watched!;
    let lastSeen = 0;
    while (now() < this.#until) {
      try {
        s.read();
        // Synchronously after read(): the version it served.
        const version = s.stat().version;
        const at = now();
        if (version < lastSeen) this.#record.anomalies.push(`p${this.index}: read() served version ${version} after ${lastSeen}`);
        lastSeen = version;
        this.#record.reads.push({ client: this.index, at, version });
        this.#ok();
      } catch (err) {
        if (isSharedStructError(err, 'STALE_READ')) this.#record.staleReadErrors += 1;
        else this.#record.unexpected.push(`p${this.index}: ${errorText(err)}`);
      }
      await sleep(spec.paceMs);
    }
  }

  async #lock(spec: SetupSpec): Promise<void> {
    const s = this.#fenced!;
    const [minHold, maxHold] = spec.holdMs ?? [50, 150];
    while (now() < this.#until) {
      const long = this.#longHold;
      this.#longHold = undefined;
      const holdMs = long ? long.ms : minHold + Math.random() * (maxHold - minHold);
      let rec: HoldRecord | undefined;
      try {
        await s.updateLocked(async (draft, lock) => {
          const acquiredAt = now();
          const hold: HoldRecord = { client: this.index, token: lock.token, acquiredAt, lastActAt: acquiredAt, long: long !== undefined };
          rec = hold;
          this.#record.holds.push(hold);
          const learned = (by: 'signal' | 'held', at: number): void => {
            if (hold.learnedAt !== undefined) return;
            hold.learnedAt = at;
            hold.learnedBy = by;
          };
          lock.signal.addEventListener('abort', () => {
            learned('signal', now());
            hold.why = (lock.signal.reason as Error | undefined)?.message;
          }, { once: true });
          long?.started();
          // The guarded steps: each one checks the lock first, then acts (here: waits a bit).
          for (let step = 0; step < 100_000; step++) {
            const held = lock.held;
            const at = now();
            if (!held) {
              learned('held', at);
              hold.fnEndAt = at;
              return;
            }
            hold.lastActAt = at;
            if (at - acquiredAt >= holdMs) break;
            await sleep(20);
          }
          draft.log.push({ t: lock.token, c: this.index });
          hold.fnEndAt = now();
        }, { lockTimeoutMs: 20000 });
        this.#ok();
        if (rec) rec.outcome = 'written';
      } catch (err) {
        if (rec) rec.outcome = isSharedStructError(err) ? err.code : String(err);
        if (isSharedStructError(err, 'CONFLICT')) {
          this.#record.lockConflicts += 1;
          this.#record.failed += 1;
        } else {
          this.#fail(err, ['LOCK_LOST', 'LOCK_TIMEOUT']);
        }
        if (isSharedStructError(err, 'LOCK_TIMEOUT')) {
          // Who held the queue up: its keys as the store has them now.
          const backend = backendOf(this.client);
          const queue = await backend.list(`${this.client.namespace}/${spec.name}/write_lock`).catch((e: unknown) => errorText(e));
          const keys = typeof queue === 'string' ? queue : queue.map((e) => `${e.key.split('/').pop()}@${e.createRevision}`).join(' ');
          this.#record.notes.push(`p${this.index} LOCK_TIMEOUT at ${now().toFixed(0)}; session ${backend.session.id} ${backend.session.state}; queue: ${keys}`);
        }
        await sleep(50);
      } finally {
        if (rec) rec.settledAt = now();
      }
      await sleep(spec.paceMs);
    }
  }

  async #elect(spec: SetupSpec): Promise<void> {
    const election = this.#election!;
    const [minHold, maxHold] = spec.holdMs ?? [50, 150];
    while (now() < this.#until) {
      const long = this.#longHold;
      this.#longHold = undefined;
      const holdMs = long ? long.ms : minHold + Math.random() * (maxHold - minHold);
      // The campaign is withdrawn when the run ends (stop() may move the end earlier).
      const withdraw = new AbortController();
      const timer = setInterval(() => {
        if (now() >= this.#until) withdraw.abort();
      }, 20);
      let term;
      try {
        term = await election.campaign({ signal: withdraw.signal });
      } catch (err) {
        if (withdraw.signal.aborted && isSharedStructError(err, 'ABORTED')) break;
        this.#fail(err);
        await sleep(50);
        continue;
      } finally {
        clearInterval(timer);
      }
      const heldAtOnce = term.held;
      const electedAt = now();
      const rec: TermRecord = { client: this.index, token: term.token, electedAt, lastActAt: electedAt, heldAtOnce, long: long !== undefined };
      this.#record.terms.push(rec);
      const learned = (by: 'signal' | 'held', at: number): void => {
        if (rec.learnedAt !== undefined) return;
        rec.learnedAt = at;
        rec.learnedBy = by;
        rec.endedAt ??= at;
      };
      term.signal.addEventListener('abort', () => learned('signal', now()), { once: true });
      long?.started();
      this.#ok();
      // The leader's guarded steps: each one checks the term first, then acts (here: waits a bit).
      let lost = false;
      for (let step = 0; step < 100_000; step++) {
        const held = term.held;
        const at = now();
        if (!held) {
          learned('held', at);
          lost = true;
          break;
        }
        rec.lastActAt = at;
        if (at - electedAt >= holdMs || (!long && at >= this.#until)) break;
        await sleep(20);
      }
      if (lost) {
        this.#record.codes.LOCK_LOST = (this.#record.codes.LOCK_LOST ?? 0) + 1;
        this.#record.failed += 1;
      } else {
        rec.endedAt = now();
        try {
          await term.resign();
        } catch (err) {
          this.#fail(err);
        }
      }
      await sleep(spec.paceMs);
    }
  }

  /**
   * queue, a consumer: serves with `batch: 4` from now until `finish()` (after the runner's
   * drain); the run itself only lasts the loop's time.
   */
  async #serve(): Promise<void> {
    this.#consumer = await settle(() => this.#server!.serve({ batch: 4 }));
    this.#ok();
    for (let i = 0; i < 100_000 && now() < this.#until; i++) await sleep(50);
  }

  /** queue, a producer (`cast`) or the caller (`call`): uniquely tagged messages, one after another. */
  async #produce(spec: SetupSpec): Promise<void> {
    const server = this.#server!;
    const kind = spec.role === 'caller' ? 'call' : 'cast';
    for (let i = 0; i < 100_000 && now() < this.#until; i++) {
      const tag = `p${this.index}-${i}`;
      try {
        if (kind === 'call') {
          const reply = await server.call({ tag }, { timeoutMs: 3000 });
          this.#record.sends.push({ client: this.index, kind, tag, outcome: 'ok', reply });
        } else {
          await server.cast({ tag });
          this.#record.sends.push({ client: this.index, kind, tag, outcome: 'ok' });
        }
        this.#ok();
      } catch (err) {
        const outcome = isSharedStructError(err, ...UNKNOWN) ? 'unknown' : isSharedStructError(err, 'QUEUE_FULL') ? 'failed' : undefined;
        if (outcome) this.#record.sends.push({ client: this.index, kind, tag, outcome });
        this.#fail(err, ['QUEUE_FULL']);
        await sleep(50);
      }
      await sleep(spec.paceMs);
    }
  }

  /** recreate, the deleter: each life lasts a while, is deleted, and the next one is created with new values. */
  async #recreate(spec: SetupSpec): Promise<void> {
    const [minLife, maxLife] = spec.lifeMs ?? [200, 400];
    let s = this.#watched as SharedStruct<Lived>;
    let life = 1;
    // Each round: the life lasts a while, is deleted, and the next one is created; the run ends
    // on a life that exists.
    for (let i = 0; i < 10_000; i++) {
      await sleep(minLife + Math.random() * (maxLife - minLife));
      if (now() >= this.#until) break;
      // The first attempt's send time: no instance may learn of this delete earlier.
      const k = this.#record.lives.findIndex((l) => l.life === life);
      this.#record.lives[k] = { ...this.#record.lives[k]!, deleteSentAt: now() };
      for (let attempt = 0; ; attempt++) {
        try {
          await s.delete();
          this.#ok();
          break;
        } catch (err) {
          // An unknown outcome: delete again (a delete of a deleted struct deletes nothing).
          this.#fail(err);
          if (attempt >= 40) throw err;
          await sleep(100);
        }
      }
      await s.close();
      await sleep(20 + Math.random() * 60);
      // A new life, with new initial values. Only this participant creates lives after the first.
      life += 1;
      const initial: Lived = { life, n: 0, by: this.index, log: [] };
      s = await settle(() => this.client.open<Lived>(spec.name, { initial }));
      if (s.readDirty().life !== life) throw new Error(`recreate: opened life ${s.readDirty().life}, not the new life ${life}`);
      this.#record.lives.push({ life, createRevision: await this.#createRevision(spec.name) });
      this.#ok();
    }
    this.#watched = s;
  }

  /** recreate, the others: reads of the cache, consistent reads and writes, in turn, across lives. */
  async #lived(spec: SetupSpec): Promise<void> {
    const s = this.#watched as SharedStruct<Lived>;
    for (let i = 0; now() < this.#until; i++) {
      const held = this.#life;
      const pick = (this.index + i) % 3;
      try {
        if (pick === 0) {
          s.read();
        } else if (pick === 1) {
          await s.readConsistent();
        } else {
          await s.update((d) => {
            d.n += 1;
            d.by = this.index;
            d.log.push(this.index);
          }, { maxRetries: 200 });
        }
        this.#ok();
      } catch (err) {
        if (isSharedStructError(err, 'NOT_FOUND')) {
          this.#record.codes.NOT_FOUND = (this.#record.codes.NOT_FOUND ?? 0) + 1;
          this.#record.failed += 1;
          // read() answers from the cache: NOT_FOUND only while the cache holds no life.
          if (pick === 0 && held !== undefined) this.#record.anomalies.push(`p${this.index}: read() NOT_FOUND while the cache held life ${held}`);
          if (pick !== 0 && held !== undefined) this.#record.notFounds.push({ life: held, at: now() });
        } else {
          this.#fail(err, ['CONFLICT', 'STALE_READ']);
        }
        await sleep(20);
      }
      await sleep(spec.paceMs);
    }
  }
}

/** A participant in the runner's own process. */
export class LocalParticipant implements ParticipantHandle {
  readonly remote = false;
  readonly pid = process.pid;
  private constructor(readonly p: Participant) {}
  static async start(config: ParticipantConfig): Promise<LocalParticipant> {
    return new LocalParticipant(await Participant.connect(config));
  }
  get index(): number {
    return this.p.index;
  }
  sessionInfo(): Promise<SessionInfo> {
    return Promise.resolve(this.p.sessionInfo());
  }
  setup(spec: SetupSpec): Promise<void> {
    return this.p.setup(spec);
  }
  run(): Promise<RunRecord> {
    return this.p.run();
  }
  stop(at: number): Promise<void> {
    this.p.stop(at);
    return Promise.resolve();
  }
  holdLong(holdMs: number, timeoutMs: number): Promise<boolean> {
    return this.p.holdLong(holdMs, timeoutMs);
  }
  nextContact(timeoutMs: number): Promise<boolean> {
    return this.p.nextContact(timeoutMs);
  }
  finish(final: { version: number; value: unknown }): Promise<FinishRecord> {
    return this.p.finish(final);
  }
  close(): Promise<void> {
    return this.p.close();
  }
}

const SCRIPT = fileURLToPath(new URL('./participant-process.ts', import.meta.url));

/** A participant in a child process (participant-process.ts), driven by JSON lines. */
export class RemoteParticipant implements ParticipantHandle {
  readonly remote = true;
  readonly index: number;
  readonly #agent: Agent;
  #next = 0;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  private constructor(index: number, agent: Agent) {
    this.index = index;
    this.#agent = agent;
    agent.onEvent((e: AgentEvent) => {
      if (e.ev !== 'reply') return;
      const waiter = this.#pending.get(e.rid as number);
      if (!waiter) return;
      this.#pending.delete(e.rid as number);
      if (e.ok) waiter.resolve(e.result);
      else waiter.reject(new Error(`participant p${index}: ${String(e.error)}`));
    });
    agent.child.once('exit', (code, signal) => {
      for (const w of this.#pending.values()) w.reject(new Error(`participant p${index} exited (${code ?? signal}); stderr: ${agent.stderr()}`));
      this.#pending.clear();
    });
  }

  /** Spawns the child and waits until it connected (bounded). */
  static async start(config: ParticipantConfig, lifetimeMs: number): Promise<RemoteParticipant> {
    const agent = startAgent({ ...config, id: `p${config.index}`, lifetimeMs }, { script: SCRIPT });
    try {
      await agent.waitFor('ready', 30000);
    } catch (err) {
      await agent.kill();
      throw err;
    }
    return new RemoteParticipant(config.index, agent);
  }

  get pid(): number {
    return this.#agent.child.pid!;
  }

  #call<T>(method: string, ...args: unknown[]): Promise<T> {
    const rid = ++this.#next;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(rid, { resolve: resolve as (v: unknown) => void, reject });
      this.#agent.send({ rid, method, args });
    });
  }

  sessionInfo(): Promise<SessionInfo> {
    return this.#call('sessionInfo');
  }
  setup(spec: SetupSpec): Promise<void> {
    return this.#call('setup', spec);
  }
  run(): Promise<RunRecord> {
    return this.#call('run');
  }
  stop(at: number): Promise<void> {
    return this.#call('stop', at);
  }
  holdLong(holdMs: number, timeoutMs: number): Promise<boolean> {
    return this.#call('holdLong', holdMs, timeoutMs);
  }
  nextContact(timeoutMs: number): Promise<boolean> {
    return this.#call('nextContact', timeoutMs);
  }
  finish(final: { version: number; value: unknown }): Promise<FinishRecord> {
    return this.#call('finish', final);
  }
  async close(): Promise<void> {
    try {
      await Promise.race([this.#call('close'), sleep(10000)]);
    } finally {
      await this.#agent.kill();
    }
  }
  pause(): Promise<void> {
    return this.#agent.pause();
  }
  resume(): void {
    this.#agent.resume();
  }
}

/** Re-attaches the update function the history needs (updates always increment `n`). */
export function toOperation(op: RecordedOp): Operation {
  const { k: _k, ...rest } = op;
  if (rest.kind === 'update') return { ...rest, next: (s: string) => JSON.stringify({ n: (JSON.parse(s) as Reg).n + 1 }) };
  return rest;
}
