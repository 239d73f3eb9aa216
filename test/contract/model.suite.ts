/**
 * The model-based test of issue 13: 2–3 clients on one struct run random, concurrent
 * interleavings of update bursts, set, compareAndSet, delete, re-create, readConsistent loops,
 * partitions (with and without session expiry) and session expiry, through the contract target
 * (memory hooks, or real servers behind a TCP proxy per client). After each run, once every cache
 * has settled, every subscriber of every instance (its `on('change')` log, with the `deleted`
 * events in between, and a `changes()` iterator) is checked against the contract:
 * - change-event revisions strictly grow (so no version of any life comes twice);
 * - within a life versions strictly grow and each event's `previousVersion` is the last version
 *   the subscriber saw; a new life starts with `previousVersion: 0`, only after a `deleted`
 *   event, and two `deleted` events never come without a change between them;
 * - the fold of `applyChanges` from the subscriber's first value equals every event's value and,
 *   at the end, the store's value (SEMANTICS: a new life's first event diffs from the last value
 *   before the delete, so the fold runs on across lives);
 * - every successful write of an instance is exactly one `local` event of that instance, nothing
 *   else is `local`, and no value of a write that did not commit is ever delivered;
 * - every instance ends equal to the store (`rawGet`, then its own `readConsistent`), and is
 *   registered among the struct's listeners.
 * Runs and seeds: a fixed seed list per backend; `SHAREDSTRUCT_MODEL_SEEDS`,
 * `SHAREDSTRUCT_MODEL_RUNS`, `SHAREDSTRUCT_MODEL_COMMANDS` and `SHAREDSTRUCT_MODEL_PATH`
 * override them (docs/TESTING.md). A failure prints fast-check's seed, path and commands.
 */
import assert from 'node:assert/strict';
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { applyChanges, isSharedStructError, type ChangeEvent, type Client, type DeepReadonly, type SharedStruct } from '../../lib/index.js';
import { decodeField, decodeHead, escapeField } from '../../lib/struct/fields.js';
import { withLayout, type ContractStore, type ContractTarget } from './target.js';

/** The struct's value: `tag` is unique per written value, so a value tells which write made it. */
interface Doc {
  tag: string;
  n: number;
  xs: number[];
  m: Record<string, number>;
}

/** Per-backend scale: memory runs many short histories, real servers a few slower ones. */
interface Profile {
  readonly runsPerSeed: number;
  readonly seeds: readonly number[];
  readonly maxCommands: number;
  readonly sessionTtlMs: number;
  readonly requestTimeoutMs: number;
  readonly partitionMs: readonly number[];
  readonly refreshIntervalMs: readonly number[];
  /** How long every cache may take to reach the store's value once the history is over. */
  readonly settleMs: number;
  /** The most an operation may stay pending after the history is over. */
  readonly drainMs: number;
  readonly maxBurst: number;
}

const PROFILES: Record<string, Profile> = {
  memory: {
    runsPerSeed: 50,
    seeds: [0x13a001, 0x13a002, 0x13a003],
    maxCommands: 24,
    sessionTtlMs: 1000,
    requestTimeoutMs: 300,
    partitionMs: [5, 30, 120, 400, 1100],
    refreshIntervalMs: [20, 200, 5000],
    settleMs: 3000,
    drainMs: 5000,
    maxBurst: 20,
  },
  real: {
    runsPerSeed: 20,
    seeds: [0x13b001, 0x13b002],
    maxCommands: 20,
    sessionTtlMs: 2000,
    requestTimeoutMs: 1000,
    partitionMs: [100, 400, 1000, 2600],
    refreshIntervalMs: [100, 1000, 5000],
    settleMs: 10000,
    drainMs: 15000,
    maxBurst: 15,
  },
};

function envInt(name: string): number | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isSafeInteger(n)) throw new Error(`${name} must be an integer, got ${raw}`);
  return n;
}

/** Each real backend its own CI seeds, so the two run different histories. */
const REAL_SEEDS: Record<string, readonly number[]> = { etcd: [0x13e001, 0x13e002], zookeeper: [0x13f001, 0x13f002] };

function profileFor(target: ContractTarget): Profile {
  const profile = PROFILES[target.name === 'memory' ? 'memory' : 'real']!;
  const base = { ...profile, seeds: REAL_SEEDS[target.name] ?? profile.seeds };
  const seeds = process.env.SHAREDSTRUCT_MODEL_SEEDS;
  return {
    ...base,
    runsPerSeed: envInt('SHAREDSTRUCT_MODEL_RUNS') ?? base.runsPerSeed,
    maxCommands: envInt('SHAREDSTRUCT_MODEL_COMMANDS') ?? base.maxCommands,
    seeds: seeds ? seeds.split(',').map((s) => {
      const n = Number(s.trim());
      if (!Number.isSafeInteger(n)) throw new Error(`SHAREDSTRUCT_MODEL_SEEDS: not an integer: ${s}`);
      return n;
    }) : base.seeds,
  };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function describeError(err: unknown): string {
  if (isSharedStructError(err)) return `${err.code}: ${err.message}`;
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

/** A value built from `s`, tagged `tag`. */
function freshValue(tag: string, s: number): Doc {
  return { tag, n: s, xs: Array.from({ length: s % 4 }, (_, i) => i * s), m: s % 2 ? { k0: s, [`k${s % 5}`]: -s } : {} };
}

/** One of a few edits, chosen by `s`, so diffs add, remove and modify array items and keys. */
function mutate(d: Doc, s: number): void {
  switch (s % 5) {
    case 0:
      d.xs.push(s);
      break;
    case 1:
      d.xs.pop();
      break;
    case 2:
      d.m[`k${s % 4}`] = s;
      break;
    case 3:
      delete d.m[`k${s % 4}`];
      break;
    default:
      d.xs = [s, ...d.xs.slice(0, 2)];
  }
}

type Item = { readonly kind: 'change'; readonly ev: ChangeEvent<Doc> } | { readonly kind: 'deleted' };

/** One open `SharedStruct` of the run, with its two subscribers. */
interface Instance {
  readonly label: string;
  readonly struct: SharedStruct<Doc>;
  /**
   * What the subscribers started from. `value` is undefined when the instance was already deleted
   * when subscribed (another client deleted the struct right after this open): the value the next
   * life diffs from is then unknown, and the fold starts at that life's first event.
   */
  readonly base: { readonly version: number; readonly revision: bigint; readonly value: DeepReadonly<Doc> | undefined };
  /** `on('change')` and `on('deleted')`, in emission order. */
  readonly log: Item[];
  /** A `changes()` iterator's events. */
  readonly iterated: ChangeEvent<Doc>[];
  iterating: Promise<void>;
  /** Tags of this instance's successful writes (each must be exactly one `local` event). */
  readonly ok: Set<string>;
}

interface ClientSlot {
  readonly index: number;
  readonly client: Client;
  readonly instances: Instance[];
  partitioned: boolean;
  expiring: boolean;
}

/** The real system of one run: the store, the clients and what the history did. */
class Run {
  readonly clients: ClientSlot[] = [];
  readonly #inflight = new Map<Promise<void>, string>();
  /** Tags that may be in the store: successful writes, writes with an unknown outcome, creations. */
  readonly mayHaveCommitted = new Set<string>();
  /** Tags of writes known not to have committed (rejected CONFLICT or NOT_FOUND). */
  readonly notCommitted = new Set<string>();
  readonly problems: string[] = [];
  /** Delete calls that resolved or whose outcome is unknown: the most `deleted` events one instance can see. */
  deletes = 0;
  #seq = 0;
  readonly name: string;

  constructor(
    readonly store: ContractStore,
    readonly profile: Profile,
    readonly refreshIntervalMs: number,
    runId: number,
    readonly layout: 'value' | 'fields' = 'value',
  ) {
    this.name = `model-${runId}`;
  }

  static async start(target: ContractTarget, profile: Profile, clients: number, refreshIntervalMs: number, runId: number, layout: 'value' | 'fields' = 'value'): Promise<Run> {
    const run = new Run(withLayout(await target.newStore(), layout), profile, refreshIntervalMs, runId, layout);
    try {
      for (let i = 0; i < clients; i++) {
        const client = await run.store.connect({ sessionTtlMs: profile.sessionTtlMs, requestTimeoutMs: profile.requestTimeoutMs });
        run.clients.push({ index: i, client, instances: [], partitioned: false, expiring: false });
      }
      for (const slot of run.clients) await run.openInstance(slot, freshValue(run.tag(slot, 'init'), slot.index));
    } catch (err) {
      await run.close();
      throw err;
    }
    return run;
  }

  get key(): string {
    return `${this.clients[0]!.client.namespace}/${this.name}/payload`;
  }

  tag(slot: ClientSlot, what: string): string {
    return `c${slot.index}.${what}.${++this.#seq}`;
  }

  slot(c: number): ClientSlot {
    return this.clients[c % this.clients.length]!;
  }

  /** The instance a client's operations use: its newest. */
  current(slot: ClientSlot): Instance {
    return slot.instances[slot.instances.length - 1]!;
  }

  /** Opens an instance with `initial` (creates the struct if absent) and subscribes to it at once. */
  async openInstance(slot: ClientSlot, initial: Doc): Promise<void> {
    this.mayHaveCommitted.add(initial.tag);
    const struct = await slot.client.open<Doc>(this.name, { initial, refreshIntervalMs: this.refreshIntervalMs });
    // Synchronously after open: both subscribers start from the same value.
    const inst: Instance = {
      label: `c${slot.index}/i${slot.instances.length}`,
      struct,
      base: { version: struct.stat().version, revision: BigInt(struct.stat().revision), value: struct.stat().state === 'open' ? struct.readDirty() : undefined },
      log: [],
      iterated: [],
      iterating: Promise.resolve(),
      ok: new Set(),
    };
    struct.on('change', (ev) => inst.log.push({ kind: 'change', ev }));
    struct.on('deleted', () => inst.log.push({ kind: 'deleted' }));
    struct.on('error', (err) => {
      if (err.code === 'CORRUPT_REMOTE_VALUE') this.problems.push(`${inst.label}: error event ${describeError(err)}`);
    });
    const iterator = struct.changes();
    inst.iterating = (async () => {
      for await (const ev of iterator) inst.iterated.push(ev);
    })().catch((err: unknown) => {
      this.problems.push(`${inst.label}: changes() iterator failed: ${describeError(err)}`);
    });
    slot.instances.push(inst);
  }

  /**
   * {@link openInstance} where the outcome may be unknown: an open cut short by the link or the
   * session (`TIMEOUT`, `CONNECTION`, `SESSION_LOST`: another command may be expiring the session)
   * may or may not have created the struct.
   */
  async openOrUnknown(slot: ClientSlot, initial: Doc): Promise<void> {
    try {
      await this.openInstance(slot, initial);
    } catch (err) {
      if (!isSharedStructError(err, 'TIMEOUT', 'CONNECTION', 'SESSION_LOST')) throw err;
    }
  }

  /** Starts `body` in the background; its unexpected errors become problems. */
  start(label: string, body: () => Promise<void>): void {
    const p: Promise<void> = body()
      .catch((err: unknown) => {
        this.problems.push(`${label}: unexpected ${describeError(err)}`);
      })
      .finally(() => this.#inflight.delete(p));
    this.#inflight.set(p, label);
  }

  /** Waits for every operation in flight (bounded). */
  async drain(ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (this.#inflight.size > 0) {
      const left = deadline - Date.now();
      if (left <= 0) {
        assert.fail(`operations still pending ${ms} ms after the history: ${[...this.#inflight.values()].join(', ')}`);
      }
      await Promise.race([Promise.allSettled([...this.#inflight.keys()]), sleep(left)]);
    }
  }

  /**
   * The outcome of a rejected write: known not committed (`CONFLICT`, `NOT_FOUND`), unknown (the
   * request may have reached the store: `TIMEOUT`, `CONNECTION`, `SESSION_LOST`), or a problem.
   */
  rejected(label: string, tags: readonly string[], err: unknown): void {
    if (isSharedStructError(err) && (err.code === 'CONFLICT' || err.code === 'NOT_FOUND')) {
      for (const t of tags) this.notCommitted.add(t);
      return;
    }
    if (isSharedStructError(err) && (err.code === 'TIMEOUT' || err.code === 'CONNECTION' || err.code === 'SESSION_LOST')) {
      for (const t of tags) this.mayHaveCommitted.add(t);
      return;
    }
    this.problems.push(`${label}: unexpected rejection ${describeError(err)}`);
  }

  /** A write resolved with `value`: it must be one the write tried; every other try did not commit. */
  succeeded(label: string, inst: Instance, tried: readonly string[], value: DeepReadonly<Doc>): void {
    if (!tried.includes(value.tag)) {
      this.problems.push(`${label}: resolved with value '${value.tag}', which it did not write (tried ${tried.join(' ')})`);
      return;
    }
    inst.ok.add(value.tag);
    this.mayHaveCommitted.add(value.tag);
    for (const t of tried) if (t !== value.tag) this.notCommitted.add(t);
  }

  /** Every instance of every client. */
  instances(): Instance[] {
    return this.clients.flatMap((c) => c.instances);
  }

  async storeValue(): Promise<Doc | undefined> {
    const bytes = await this.store.rawGet(this.key);
    if (!bytes || this.layout === 'value') return bytes ? (JSON.parse(new TextDecoder().decode(bytes)) as Doc) : undefined;
    // Field by field, with the raw client (the run is quiescent: nothing writes any more).
    const doc: Record<string, unknown> = {};
    const folder = `${this.clients[0]!.client.namespace}/${this.name}/fields`;
    for (const [k, version] of decodeHead(bytes)) {
      const raw = await this.store.rawGet(`${folder}/${escapeField(k)}`);
      const field = raw && decodeField(raw);
      if (!field || field.version !== version) throw new Error(`field '${k}' of the stored struct is missing or not at version ${version}`);
      doc[k] = JSON.parse(new TextDecoder().decode(field.body)) as unknown;
    }
    return doc as unknown as Doc;
  }

  /**
   * The end of a run: drain, let every cache reach the store's value by itself (watch and
   * refresh only), then check every subscriber. Throws with every violation found.
   */
  async finish(): Promise<void> {
    await this.drain(this.profile.drainMs);
    const value = await this.storeValue();
    const lagging = (): string[] =>
      this.instances().flatMap((inst) => {
        const st = inst.struct.stat();
        if (value === undefined) return st.state === 'deleted' ? [] : [`${inst.label}: ${st.state} v${st.version} '${inst.struct.readDirty().tag}' (the store has no struct)`];
        if (st.state !== 'open') return [`${inst.label}: ${st.state} (the store has '${value.tag}')`];
        const mine = inst.struct.readDirty();
        return isDeepStrictEqual(mine, value) ? [] : [`${inst.label}: v${st.version} '${mine.tag}' (the store has '${value.tag}')`];
      });
    // Every open instance stays registered as a listener (re-created after a lost session).
    const unregistered = async (): Promise<string[]> => {
      try {
        const ids = new Set((await this.instances()[0]!.struct.listeners()).map((m) => m.id));
        return this.instances().flatMap((inst) => (ids.has(inst.struct.id) ? [] : [inst.label]));
      } catch (err) {
        return [`listeners() failed: ${describeError(err)}`];
      }
    };
    const deadline = Date.now() + this.profile.settleMs;
    while (lagging().length > 0 && Date.now() < deadline) await sleep(20);
    let missing = await unregistered();
    while (missing.length > 0 && Date.now() < deadline) {
      await sleep(50);
      missing = await unregistered();
    }
    const violations: string[] = [...this.problems];
    const stuck = lagging();
    if (stuck.length > 0) violations.push(`caches not equal to the store ${this.profile.settleMs} ms after the history: ${stuck.join('; ')}`);
    if (missing.length > 0) violations.push(`listener registrations missing ${this.profile.settleMs} ms after the history: ${missing.join(', ')}`);
    // The iterators take their events asynchronously: wait until each took what on('change') saw.
    const lastTag = (inst: Instance): string | undefined => {
      for (let i = inst.log.length - 1; i >= 0; i--) {
        const item = inst.log[i]!;
        if (item.kind === 'change') return item.ev.value.tag;
      }
      return undefined;
    };
    const iterDeadline = Date.now() + 2000;
    while (Date.now() < iterDeadline && this.instances().some((i) => i.iterated[i.iterated.length - 1]?.value.tag !== lastTag(i))) await sleep(10);
    if (value !== undefined) {
      for (const inst of this.instances()) {
        try {
          const read = await inst.struct.readConsistent();
          if (!isDeepStrictEqual(read, value)) violations.push(`${inst.label}: readConsistent() gave '${read.tag}', the store has '${value.tag}'`);
        } catch (err) {
          violations.push(`${inst.label}: readConsistent() failed after the history: ${describeError(err)}`);
        }
      }
    }
    for (const inst of this.instances()) {
      violations.push(...this.checkSubscriber(`${inst.label} on('change')`, inst, inst.log, value, true));
      const iterated = inst.iterated.map((ev) => ({ kind: 'change' as const, ev }));
      violations.push(...this.checkSubscriber(`${inst.label} changes()`, inst, iterated, value, false));
    }
    if (violations.length > 0) {
      const shown = violations.slice(0, 12);
      const more = violations.length > shown.length ? `\n  … and ${violations.length - shown.length} more` : '';
      assert.fail(`${violations.length} contract violation(s):\n  ${shown.join('\n  ')}${more}`);
    }
  }

  /**
   * The per-subscriber invariants (see the file's head). `withDeletes`: the log carries the
   * `deleted` events (an iterator has none: there a new life shows only as `previousVersion: 0`).
   */
  checkSubscriber(what: string, inst: Instance, items: readonly Item[], final: Doc | undefined, withDeletes: boolean): string[] {
    const out: string[] = [];
    let fold: unknown = inst.base.value;
    let foldKnown = inst.base.value !== undefined;
    let lastVersion: number | undefined = inst.base.value === undefined ? undefined : inst.base.version; // undefined: after a delete
    let lastRevision = inst.base.revision;
    let deleted = 0;
    let previousWasDelete = false;
    const locals = new Map<string, number>();
    const trace = (): string =>
      items
        .slice(-10)
        .map((i) => (i.kind === 'deleted' ? 'deleted' : `v${i.ev.version}<-${i.ev.previousVersion}:${i.ev.origin}:${i.ev.value.tag}`))
        .join(' ');
    for (const item of items) {
      if (item.kind === 'deleted') {
        deleted += 1;
        if (previousWasDelete) out.push(`${what}: a second 'deleted' event with no change in between (a stale delete?)`);
        previousWasDelete = true;
        lastVersion = undefined;
        continue;
      }
      previousWasDelete = false;
      const ev = item.ev;
      const at = `${what} v${ev.version} (prev ${ev.previousVersion}, ${ev.origin}, '${ev.value.tag}')`;
      const revision = BigInt(ev.revision);
      if (revision <= lastRevision) out.push(`${at}: revision ${ev.revision} after ${lastRevision} (a version delivered twice?)`);
      lastRevision = revision;
      if (ev.previousVersion === 0) {
        if (withDeletes && lastVersion !== undefined) out.push(`${at}: a new life without a 'deleted' event before it`);
      } else if (lastVersion === undefined) {
        if (withDeletes) out.push(`${at}: a change after 'deleted' that does not start a new life`);
      } else {
        if (ev.version <= lastVersion) out.push(`${at}: version after v${lastVersion} in the same life`);
        if (ev.previousVersion !== lastVersion) out.push(`${at}: previousVersion is not the last version this subscriber saw (v${lastVersion})`);
        if (ev.version !== ev.previousVersion + 1 && !ev.coalesced) out.push(`${at}: skips versions but is not coalesced`);
      }
      lastVersion = ev.version;
      if (foldKnown) {
        fold = applyChanges(fold, ev.changes);
        if (!isDeepStrictEqual(fold, ev.value)) out.push(`${at}: the fold of the changes is not the event's value`);
      } else {
        fold = ev.value;
        foldKnown = true;
      }
      const tag = ev.value.tag;
      if (this.notCommitted.has(tag) && !this.mayHaveCommitted.has(tag)) out.push(`${at}: the value of a write that was rejected (it did not commit)`);
      else if (!this.mayHaveCommitted.has(tag)) out.push(`${at}: a value no one wrote`);
      if (ev.origin === 'local') {
        locals.set(tag, (locals.get(tag) ?? 0) + 1);
        if (!inst.ok.has(tag)) out.push(`${at}: 'local', but not a successful write of this instance`);
      } else if (inst.ok.has(tag)) {
        out.push(`${at}: this instance's own successful write delivered as '${ev.origin}'`);
      }
    }
    for (const tag of inst.ok) {
      const n = locals.get(tag) ?? 0;
      if (n !== 1) out.push(`${what}: own write '${tag}' came as ${n} 'local' event(s), not 1`);
    }
    if (deleted > this.deletes) out.push(`${what}: ${deleted} 'deleted' events for at most ${this.deletes} deletes`);
    if (final !== undefined) {
      if (withDeletes && lastVersion === undefined) out.push(`${what}: ends deleted, but the store has '${final.tag}'`);
      else if (!isDeepStrictEqual(fold, final)) out.push(`${what}: the fold ends at '${(fold as Doc | undefined)?.tag}', the store has '${final.tag}'`);
    } else if (withDeletes && lastVersion !== undefined) {
      out.push(`${what}: the store has no struct, but no 'deleted' event came last`);
    }
    if (out.length > 0) out.push(`${what}: its last events (base v${inst.base.version} '${inst.base.value?.tag ?? 'deleted'}'): ${trace()}`);
    return out;
  }

  async close(): Promise<void> {
    for (const slot of this.clients) slot.partitioned = false;
    await this.store.close();
    await Promise.allSettled(this.instances().map((i) => i.iterating));
  }
}

interface Model {
  recreates: number;
}

type Cmd = fc.AsyncCommand<Model, Run>;

/** Base of the commands: `run` starts the operation in the background unless said otherwise. */
abstract class Command implements Cmd {
  check(_m: Readonly<Model>): boolean {
    return true;
  }
  abstract run(m: Model, r: Run): Promise<void>;
  abstract toString(): string;
}

class UpdateBurst extends Command {
  constructor(readonly c: number, readonly k: number, readonly s: number) {
    super();
  }
  run(_m: Model, r: Run): Promise<void> {
    const slot = r.slot(this.c);
    const inst = r.current(slot);
    r.start(`${this.toString()} on ${inst.label}`, async () => {
      for (let i = 0; i < this.k; i++) {
        const tried: string[] = [];
        try {
          const w = await inst.struct.update((d) => {
            const tag = r.tag(slot, 'u');
            tried.push(tag);
            d.tag = tag;
            d.n += 1;
            mutate(d, this.s + i);
          });
          r.succeeded(`${this.toString()}`, inst, tried, w.value);
        } catch (err) {
          r.rejected(`${this.toString()}`, tried, err);
          if (isSharedStructError(err, 'NOT_FOUND')) return;
        }
      }
    });
    return Promise.resolve();
  }
  toString(): string {
    return `update(c${this.c}×${this.k},s${this.s})`;
  }
}

class SetValue extends Command {
  constructor(readonly c: number, readonly s: number) {
    super();
  }
  run(_m: Model, r: Run): Promise<void> {
    const slot = r.slot(this.c);
    const inst = r.current(slot);
    const value = freshValue(r.tag(slot, 's'), this.s);
    r.start(`${this.toString()} on ${inst.label}`, async () => {
      try {
        r.succeeded(`${this.toString()}`, inst, [value.tag], (await inst.struct.set(value)).value);
      } catch (err) {
        r.rejected(`${this.toString()}`, [value.tag], err);
      }
    });
    return Promise.resolve();
  }
  toString(): string {
    return `set(c${this.c},s${this.s})`;
  }
}

class CompareAndSet extends Command {
  constructor(readonly c: number, readonly s: number) {
    super();
  }
  run(_m: Model, r: Run): Promise<void> {
    const slot = r.slot(this.c);
    const inst = r.current(slot);
    const st = inst.struct.stat();
    if (st.state !== 'open') return Promise.resolve();
    const value = freshValue(r.tag(slot, 'cas'), this.s);
    r.start(`${this.toString()} on ${inst.label}`, async () => {
      try {
        r.succeeded(`${this.toString()}`, inst, [value.tag], (await inst.struct.compareAndSet(st.version, value)).value);
      } catch (err) {
        r.rejected(`${this.toString()}`, [value.tag], err);
      }
    });
    return Promise.resolve();
  }
  toString(): string {
    return `compareAndSet(c${this.c},s${this.s})`;
  }
}

class Delete extends Command {
  constructor(readonly c: number) {
    super();
  }
  run(_m: Model, r: Run): Promise<void> {
    const inst = r.current(r.slot(this.c));
    r.start(`${this.toString()} on ${inst.label}`, async () => {
      try {
        await inst.struct.delete();
        r.deletes += 1;
      } catch (err) {
        if (isSharedStructError(err) && (err.code === 'TIMEOUT' || err.code === 'CONNECTION' || err.code === 'SESSION_LOST')) r.deletes += 1;
        else throw err;
      }
    });
    return Promise.resolve();
  }
  toString(): string {
    return `delete(c${this.c})`;
  }
}

/** `open` with `initial`: re-creates the struct if it is gone (SPEC: create-if-absent), as a new instance. */
class Recreate extends Command {
  constructor(readonly c: number, readonly s: number, readonly afterDeleteBy: number | undefined) {
    super();
  }
  override check(m: Readonly<Model>): boolean {
    return m.recreates < 4;
  }
  run(m: Model, r: Run): Promise<void> {
    m.recreates += 1;
    const slot = r.slot(this.c);
    const deleter = this.afterDeleteBy === undefined ? undefined : r.current(r.slot(this.afterDeleteBy));
    const initial = freshValue(r.tag(slot, 'new'), this.s);
    r.start(`${this.toString()}`, async () => {
      if (deleter) {
        try {
          await deleter.struct.delete();
          r.deletes += 1;
        } catch (err) {
          if (isSharedStructError(err) && (err.code === 'TIMEOUT' || err.code === 'CONNECTION' || err.code === 'SESSION_LOST')) r.deletes += 1;
          else throw err;
        }
      }
      await r.openOrUnknown(slot, initial);
    });
    return Promise.resolve();
  }
  toString(): string {
    return this.afterDeleteBy === undefined ? `recreate(c${this.c},s${this.s})` : `delete(c${this.afterDeleteBy})+recreate(c${this.c},s${this.s})`;
  }
}

class ReadLoop extends Command {
  constructor(readonly c: number, readonly k: number, readonly parallel: number) {
    super();
  }
  run(_m: Model, r: Run): Promise<void> {
    const inst = r.current(r.slot(this.c));
    for (let p = 0; p < this.parallel; p++) {
      r.start(`${this.toString()}#${p} on ${inst.label}`, async () => {
        for (let i = 0; i < this.k; i++) {
          try {
            const v = await inst.struct.readConsistent();
            // SPEC: the events of what it read were delivered before it resolved.
            const seen = v.tag === inst.base.value?.tag || inst.log.some((it) => it.kind === 'change' && it.ev.value.tag === v.tag);
            if (!seen) r.problems.push(`${this.toString()} on ${inst.label}: readConsistent() resolved '${v.tag}' before its event was delivered`);
          } catch (err) {
            if (isSharedStructError(err) && (err.code === 'NOT_FOUND' || err.code === 'TIMEOUT' || err.code === 'CONNECTION' || err.code === 'SESSION_LOST')) continue;
            throw err;
          }
        }
      });
    }
    return Promise.resolve();
  }
  toString(): string {
    return `readConsistent(c${this.c}×${this.k}×${this.parallel})`;
  }
}

/**
 * Cuts one client off (at most one at a time) for `ms`, optionally expiring its session
 * meanwhile, and optionally reading consistently at once on the heal (as a client that reconnects
 * and wants to know where it stands does), racing the news the cut held back.
 */
class Partition extends Command {
  constructor(readonly c: number, readonly ms: number, readonly expire: boolean, readonly readOnHeal: boolean) {
    super();
  }
  async run(_m: Model, r: Run): Promise<void> {
    const slot = r.slot(this.c);
    if (r.clients.some((s) => s.partitioned || s.expiring)) return;
    slot.partitioned = true;
    const heal = await r.store.partition(slot.client);
    r.start(`${this.toString()}`, async () => {
      try {
        if (this.expire) await r.store.expireSession(slot.client);
        await sleep(this.ms);
      } finally {
        slot.partitioned = false;
        await heal();
      }
      if (this.readOnHeal) await new ReadLoop(this.c, 3, 2).run(_m, r);
    });
  }
  toString(): string {
    return `partition(c${this.c},${this.ms}ms${this.expire ? ',expire' : ''}${this.readOnHeal ? ',read' : ''})`;
  }
}

/**
 * A lifecycle change while a client is cut off: client `c` is cut off (optionally with an update
 * of its own in flight), client `d` deletes the struct and re-creates it, the cut heals and `c`
 * reads consistently at once — the news the cut held back races what the reads bring.
 */
class CutRecreate extends Command {
  constructor(readonly c: number, readonly d: number, readonly s: number, readonly withWrite: boolean) {
    super();
  }
  override check(m: Readonly<Model>): boolean {
    return m.recreates < 4;
  }
  async run(m: Model, r: Run): Promise<void> {
    const cut = r.slot(this.c);
    const other = r.clients[(cut.index + 1 + (this.d % (r.clients.length - 1))) % r.clients.length]!;
    if (r.clients.some((x) => x.partitioned || x.expiring)) return;
    m.recreates += 1;
    cut.partitioned = true;
    const heal = await r.store.partition(cut.client);
    const deleter = r.current(other);
    const initial = freshValue(r.tag(other, 'new'), this.s);
    r.start(`${this.toString()}`, async () => {
      try {
        if (this.withWrite) await new UpdateBurst(cut.index, 1, this.s).run(m, r);
        try {
          await deleter.struct.delete();
          r.deletes += 1;
        } catch (err) {
          if (isSharedStructError(err) && (err.code === 'TIMEOUT' || err.code === 'CONNECTION' || err.code === 'SESSION_LOST')) r.deletes += 1;
          else throw err;
        }
        await r.openOrUnknown(other, initial);
      } finally {
        cut.partitioned = false;
        await heal();
      }
      await new ReadLoop(cut.index, 5, 2).run(m, r);
    });
  }
  toString(): string {
    return `cut(c${this.c})+delete+recreate(other ${this.d},s${this.s})${this.withWrite ? '+update' : ''}`;
  }
}

class Expire extends Command {
  constructor(readonly c: number) {
    super();
  }
  run(_m: Model, r: Run): Promise<void> {
    const slot = r.slot(this.c);
    if (slot.partitioned || slot.expiring) return Promise.resolve();
    slot.expiring = true;
    r.start(`${this.toString()}`, async () => {
      try {
        await r.store.expireSession(slot.client);
      } finally {
        slot.expiring = false;
      }
    });
    return Promise.resolve();
  }
  toString(): string {
    return `expireSession(c${this.c})`;
  }
}

class Pause extends Command {
  constructor(readonly ms: number) {
    super();
  }
  run(): Promise<void> {
    return sleep(this.ms);
  }
  toString(): string {
    return `pause(${this.ms}ms)`;
  }
}

class Drain extends Command {
  run(_m: Model, r: Run): Promise<void> {
    return r.drain(r.profile.drainMs);
  }
  toString(): string {
    return 'drain';
  }
}

function commandArbs(profile: Profile): fc.Arbitrary<Cmd>[] {
  const c = fc.nat(2);
  const s = fc.nat(1000);
  const weighted = fc.oneof(
    { weight: 5, arbitrary: fc.tuple(c, fc.integer({ min: 1, max: profile.maxBurst }), s).map(([a, k, x]) => new UpdateBurst(a, k, x)) },
    { weight: 4, arbitrary: fc.tuple(c, fc.integer({ min: 1, max: profile.maxBurst }), fc.integer({ min: 1, max: 3 })).map(([a, k, p]) => new ReadLoop(a, k, p)) },
    { weight: 2, arbitrary: fc.tuple(c, s).map(([a, x]) => new SetValue(a, x)) },
    { weight: 2, arbitrary: fc.tuple(c, s).map(([a, x]) => new CompareAndSet(a, x)) },
    { weight: 2, arbitrary: c.map((a) => new Delete(a)) },
    { weight: 3, arbitrary: fc.tuple(c, s, fc.option(c, { nil: undefined, freq: 3 })).map(([a, x, d]) => new Recreate(a, x, d)) },
    { weight: 2, arbitrary: fc.tuple(c, fc.constantFrom(...profile.partitionMs), fc.boolean(), fc.boolean()).map(([a, ms, e, rd]) => new Partition(a, ms, e, rd)) },
    { weight: 1, arbitrary: c.map((a) => new Expire(a)) },
    { weight: 3, arbitrary: fc.tuple(c, c, s, fc.boolean()).map(([a, d, x, w]) => new CutRecreate(a, d, x, w)) },
    { weight: 3, arbitrary: fc.constantFrom(0, 2, 10, 50, 150).map((ms) => new Pause(ms)) },
    { weight: 1, arbitrary: fc.constant(new Drain()) },
  );
  return [weighted];
}

/** Registers the model-based test under `[name] model`. */
export function modelContract(target: ContractTarget, layout: 'value' | 'fields' = 'value'): void {
  const profile = profileFor(target);
  describe(`[${target.name}] model${layout === 'value' ? '' : ` (layout '${layout}')`}: random concurrent histories keep every subscriber's contract`, function () {
    before(async function () {
      this.timeout(120000);
      await target.setup();
    });
    after(() => target.teardown());
    let runId = 0;
    for (const seed of profile.seeds) {
      it(`seed ${seed}: ${profile.runsPerSeed} runs of up to ${profile.maxCommands} commands`, async function () {
        // A run's worst case: its commands, the drain and the settle bounds.
        this.timeout(profile.runsPerSeed * (profile.drainMs + profile.settleMs + 15000) + 30000);
        const path = process.env.SHAREDSTRUCT_MODEL_PATH;
        const property = fc.asyncProperty(
          fc.integer({ min: 2, max: 3 }),
          fc.constantFrom(...profile.refreshIntervalMs),
          // size 'max': histories of every length up to maxCommands (fast-check's default size
          // would cap them near 10 whatever maxCommands says).
          fc.commands(commandArbs(profile), { maxCommands: profile.maxCommands, size: 'max' }),
          async (clients, refreshIntervalMs, cmds) => {
            const run = await Run.start(target, profile, clients, refreshIntervalMs, ++runId, layout);
            try {
              await fc.asyncModelRun(() => ({ model: { recreates: 0 }, real: run }), cmds);
              await run.finish();
            } finally {
              await run.close();
            }
          },
        );
        await fc.assert(property, { seed, numRuns: profile.runsPerSeed, endOnFailure: true, ...(path ? { path } : {}) });
      });
    }
  });
}
